package syscalls

import (
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// familyNames are the address families records name; x/sys has the numbers
// but no names.
var familyNames = map[uint16]string{
	unix.AF_UNIX: "AF_UNIX", unix.AF_INET: "AF_INET", unix.AF_INET6: "AF_INET6", unix.AF_PACKET: "AF_PACKET",
	unix.AF_NETLINK: "AF_NETLINK", unix.AF_VSOCK: "AF_VSOCK", unix.AF_BLUETOOTH: "AF_BLUETOOTH",
	unix.AF_ALG: "AF_ALG", unix.AF_KEY: "AF_KEY", unix.AF_XDP: "AF_XDP", unix.AF_CAN: "AF_CAN",
}

// FamilyName names an address family: "AF_INET", or "AF_<n>" for one
// without a name here.
func FamilyName(f uint16) string {
	if n, ok := familyNames[f]; ok {
		return n
	}
	return "AF_" + strconv.Itoa(int(f))
}

// ParseFamily is the inverse of FamilyName.
func ParseFamily(s string) (uint16, error) {
	for f, n := range familyNames {
		if n == s {
			return f, nil
		}
	}
	if n, ok := strings.CutPrefix(s, "AF_"); ok {
		if v, err := strconv.ParseUint(n, 10, 16); err == nil {
			return uint16(v), nil
		}
	}
	return 0, fmt.Errorf("unknown address family %q (want a name like AF_INET or AF_<number>)", s)
}
