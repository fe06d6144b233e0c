package sensor

// For the tests in package sensor_test, which take the sensor's counts
// through later stages (they cannot be in package sensor: those stages
// import it).
var (
	StartChild = startChild
	FloodChild = func(c *child, seconds int) string { return c.do("flood %d", seconds) }
	EbadfChild = func(c *child, n int) string { return c.do("ebadf %d", n) }
)
