package collector

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/credentials"
)

// privateDir makes dir (mode 0700) or checks that it already is one only
// the collector's user may enter. The socket's own mode is not enough: it
// is set after bind, and some systems ignore socket permissions; a
// directory nobody else can search closes both gaps. An existing directory
// is never chmod-ed: it may be shared on purpose (/run, /tmp).
func privateDir(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("make unix socket directory %s: %w", dir, err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("unix socket directory: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("unix socket directory %s is not a directory (a symlink?): use a directory only the collector's user may enter", dir)
	case !ok || int(st.Uid) != os.Geteuid():
		return fmt.Errorf("unix socket directory %s is not owned by the collector's user (uid %d): use a directory of its own, mode 0700", dir, os.Geteuid())
	case fi.Mode().Perm()&0o077 != 0:
		return fmt.Errorf("unix socket directory %s is mode %04o: whoever can enter it can reach the socket; `chmod 0700 %s` or put the socket in a directory of its own", dir, fi.Mode().Perm(), dir)
	}
	return nil
}

// peerCredentials refuses unix socket peers that are neither root nor the
// collector's own user, read from the kernel (SO_PEERCRED) at connect time,
// so a socket reachable by mistake (a shared mount, a wrong mode) still
// admits no one else.
type peerCredentials struct {
	credentials.TransportCredentials
	refused func()
}

// errPeer is returned for a refused peer.
var errPeer = errors.New("unix socket peer is not root or the collector's user")

// PeerInfo is the AuthInfo of a unix socket connection.
type PeerInfo struct {
	credentials.CommonAuthInfo
	UID, PID int
}

// AuthType implements credentials.AuthInfo.
func (PeerInfo) AuthType() string { return "unix-peer" }

func (p peerCredentials) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return nil, nil, fmt.Errorf("unix socket listener got a %T connection", c)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return nil, nil, fmt.Errorf("peer credentials: %w", err)
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, nil, fmt.Errorf("peer credentials: %w", err)
	}
	if credErr != nil {
		return nil, nil, fmt.Errorf("peer credentials: %w", credErr)
	}
	if cred.Uid != 0 && int(cred.Uid) != os.Geteuid() {
		if p.refused != nil {
			p.refused()
		}
		c.Close()
		return nil, nil, fmt.Errorf("%w: uid %d, pid %d", errPeer, cred.Uid, cred.Pid)
	}
	return c, PeerInfo{CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.NoSecurity}, UID: int(cred.Uid), PID: int(cred.Pid)}, nil
}

func (p peerCredentials) Clone() credentials.TransportCredentials {
	return peerCredentials{TransportCredentials: p.TransportCredentials.Clone(), refused: p.refused}
}
