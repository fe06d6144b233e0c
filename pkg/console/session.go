package console

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/errnowatch/errnowatch/pkg/cgroup"
	"github.com/errnowatch/errnowatch/pkg/sensor"
)

// session is the sensor, the cgroup resolver and the drain clock that both
// views run on.
type session struct {
	sensor   *sensor.Sensor
	resolver *cgroup.Resolver
	log      *zap.Logger
}

// sessionConfig is what a view asks of the session.
type sessionConfig struct {
	Filter           FilterFlags
	Durations        bool
	RecordsPerWindow int
	Log              *zap.Logger
}

func openSession(cfg sessionConfig) (*session, error) {
	log := cfg.Log
	if log == nil {
		log = zap.NewNop()
	}
	res, err := cgroup.NewResolver(log, cgroup.Options{})
	if err != nil {
		return nil, fmt.Errorf("cgroups: %w", err)
	}
	f, err := cfg.Filter.Build(res.Mount())
	if err != nil {
		res.Close()
		return nil, err
	}
	s, err := sensor.Load(sensor.Config{
		Filter:           f,
		Durations:        cfg.Durations,
		RecordsPerWindow: cfg.RecordsPerWindow,
		ExcludeSelf:      true,
	}, log)
	if err != nil {
		res.Close()
		return nil, err
	}
	return &session{sensor: s, resolver: res, log: log}, nil
}

// run delivers records and drained intervals until ctx is done or count
// intervals have passed (count 0: no limit), then detaches.
func (s *session) run(ctx context.Context, every time.Duration, count int,
	onRecord func(sensor.Record) error, onInterval func(sensor.Interval) error) (err error) {
	defer func() {
		if cerr := s.close(); err == nil {
			err = cerr
		}
	}()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go s.resolver.Run(ctx)

	tick := time.NewTicker(every)
	defer tick.Stop()
	records := s.sensor.Records()
	for n := 0; count == 0 || n < count; {
		select {
		case <-ctx.Done():
			return nil
		case r, ok := <-records:
			if !ok {
				return nil
			}
			if onRecord != nil {
				if err := onRecord(r); err != nil {
					return err
				}
			}
		case <-tick.C:
			iv, err := s.sensor.Drain()
			if err != nil {
				return err
			}
			n++
			if onInterval != nil {
				if err := onInterval(iv); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (s *session) close() error {
	err := s.sensor.Close()
	s.resolver.Close()
	return err
}

// cgroupPath names a cgroup id, or says it is gone.
func (s *session) cgroupPath(id uint64) string {
	if p, ok := s.resolver.Lookup(id); ok {
		return p
	}
	return fmt.Sprintf("<cgroup %d>", id)
}
