// Package importgraph holds the test that keeps the stages of errnowatch in
// order: every package has a stage, data flows from earlier stages to later
// ones, so no package imports a later stage, and no package reaches into
// another's client. It has no code of its own; see importgraph_test.go for
// the stage order.
package importgraph
