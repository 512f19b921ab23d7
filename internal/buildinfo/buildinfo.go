// Package buildinfo describes the running binary from what the Go
// toolchain recorded in it (runtime/debug.ReadBuildInfo): the module
// version (set by go install pkg@version), the VCS revision and time
// (set by go build in a checkout), and the Go version.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Info is what is known about the build.
type Info struct {
	Version  string // module version, "(devel)" for a checkout build
	Revision string // VCS revision, with "-dirty" if modified
	Time     string // VCS commit time
	Go       string
}

// Read returns the build's information; what the toolchain did not record
// stays empty.
func Read() Info {
	in := Info{Go: runtime.Version(), Version: "(devel)"}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return in
	}
	if v := bi.Main.Version; v != "" {
		in.Version = v
	}
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			in.Revision = s.Value
		case "vcs.time":
			in.Time = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if modified && in.Revision != "" {
		in.Revision += "-dirty"
	}
	return in
}

// Line is one line for `NAME version`: "pdvault v1.2.3 (rev abc123, 2026-11-23T10:00:00Z) go1.26.8 linux/amd64".
func (in Info) Line(name string) string {
	var extra []string
	if in.Revision != "" {
		rev := in.Revision
		if len(rev) > 12 && !strings.HasSuffix(rev, "-dirty") {
			rev = rev[:12]
		}
		extra = append(extra, "rev "+rev)
	}
	if in.Time != "" {
		extra = append(extra, in.Time)
	}
	s := name + " " + in.Version
	if len(extra) > 0 {
		s += " (" + strings.Join(extra, ", ") + ")"
	}
	return fmt.Sprintf("%s %s %s/%s", s, in.Go, runtime.GOOS, runtime.GOARCH)
}
