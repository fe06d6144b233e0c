package main

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/errnowatch/errnowatch/pkg/rules"
)

func newRulesCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rules",
		Short: "Check rule files, and replay recorded failures through them",
	}
	cmd.AddCommand(&cobra.Command{
		Use:     "validate PATH...",
		Short:   "Check rule files or directories; every problem is reported as file:line: message",
		Example: "  errnowatch rules validate rules/ my-rules.yaml",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rs, err := rules.Load(args...)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d rules OK\n", len(rs.Rules))
			return nil
		},
	})
	var recordsFile string
	var interval time.Duration
	test := &cobra.Command{
		Use:   "test PATH... --records FILE",
		Short: "Replay recorded trace/top JSON lines through rules and print the alerts, one JSON object per line",
		Long: `Replays a file of 'errnowatch trace -o json' records and/or 'errnowatch top -o json'
intervals through the rules, as the agent would evaluate them, and prints every
alert raised or updated.`,
		Example: "  errnowatch top -o json --count 60 > counts.jsonl\n  errnowatch rules test rules/ --records counts.jsonl",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if recordsFile == "" {
				return fmt.Errorf("give the recording with --records FILE")
			}
			rs, err := rules.Load(args...)
			if err != nil {
				return err
			}
			log, err := g.logger()
			if err != nil {
				return err
			}
			f, err := os.Open(recordsFile)
			if err != nil {
				return err
			}
			defer f.Close()
			alerts, err := rules.NewEngine(rs, rules.Config{Interval: interval, Logger: log}).Replay(f)
			enc := json.NewEncoder(cmd.OutOrStdout())
			for i := range alerts {
				if err := enc.Encode(&alerts[i]); err != nil {
					return err
				}
			}
			if err != nil {
				return fmt.Errorf("%s: %w", recordsFile, err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%d alerts\n", len(alerts))
			return nil
		},
	}
	test.Flags().StringVar(&recordsFile, "records", "", "recorded JSON lines (trace -o json records, top -o json intervals)")
	test.Flags().DurationVar(&interval, "interval", time.Second, "the interval the recording was drained at")
	cmd.AddCommand(test)
	return cmd
}
