// Command otelcol is a minimal OpenTelemetry Collector built from the
// collector's Go modules, for errnowatch's sink tests only: it carries the
// receivers the sinks speak to (OTLP, syslog) and the file
// exporter the tests read back. It is never shipped. Keep the component list
// short: every component added costs cold build time (make otelcol).
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/open-telemetry/opentelemetry-collector-contrib/exporter/fileexporter"
	"github.com/open-telemetry/opentelemetry-collector-contrib/receiver/syslogreceiver"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/service/telemetry"
	"go.uber.org/zap"
)

func components() (otelcol.Factories, error) {
	var f otelcol.Factories
	var err error
	f.Telemetry = minimalTelemetry()
	f.Receivers, err = otelcol.MakeFactoryMap[receiver.Factory](
		otlpreceiver.NewFactory(),
		syslogreceiver.NewFactory(),
	)
	if err != nil {
		return f, fmt.Errorf("receivers: %w", err)
	}
	f.Exporters, err = otelcol.MakeFactoryMap[exporter.Factory](fileexporter.NewFactory())
	if err != nil {
		return f, fmt.Errorf("exporters: %w", err)
	}
	return f, nil
}

// minimalTelemetry logs to stderr and exports no metrics or traces: the
// collector's own telemetry factory (otelconftelemetry) brings cloud
// resource detectors and exporters that would double the cold build. The
// config must then have no service.telemetry section.
func minimalTelemetry() telemetry.Factory {
	return telemetry.NewFactory(
		func() component.Config { return new(struct{}) },
		telemetry.WithCreateLogger(func(context.Context, telemetry.LoggerSettings, component.Config) (*zap.Logger, component.ShutdownFunc, error) {
			l, err := zap.NewProduction()
			if err != nil {
				return nil, nil, err
			}
			return l, func(context.Context) error { _ = l.Sync(); return nil }, nil
		}),
	)
}

func main() {
	set := otelcol.CollectorSettings{
		BuildInfo: component.BuildInfo{
			Command:     "otelcol",
			Description: "errnowatch test collector (OTLP and syslog receivers, file exporter)",
			Version:     "test",
		},
		Factories: components,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{
			ResolverSettings: confmap.ResolverSettings{
				ProviderFactories: []confmap.ProviderFactory{fileprovider.NewFactory(), envprovider.NewFactory()},
				DefaultScheme:     "env",
			},
		},
	}
	if err := otelcol.NewCommand(set).Execute(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
