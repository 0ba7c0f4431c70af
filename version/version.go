// Package version holds the version and source revision a binary was built from. The image builder
// (package images) and the Dockerfile set both through the linker (-X), from the chart's appVersion and the
// git commit; a plain `go build` leaves the defaults.
package version

var (
	// Version is the release version, the chart's appVersion (e.g. "0.1.0"); "dev" when not stamped.
	Version = "dev"
	// Revision is the git commit the binary was built from; "unknown" when not stamped.
	Revision = "unknown"
)
