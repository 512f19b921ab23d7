package policy

import (
	"net/netip"
	"regexp"
	"strings"
)

var labelRE = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$`)

// ValidHostName says whether s is a lowercase DNS host name of two or more
// labels (letters, digits, inner hyphens; IDNs in their xn-- form), at
// most 253 characters, with no trailing dot, not an IP address and not a
// name under localhost.
func ValidHostName(s string) bool {
	if len(s) > 253 || strings.HasSuffix(s, ".") {
		return false
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return false
	}
	labels := strings.Split(s, ".")
	if len(labels) < 2 || labels[len(labels)-1] == "localhost" {
		return false
	}
	for _, l := range labels {
		if !labelRE.MatchString(l) {
			return false
		}
	}
	// A top-level label is never all digits (RFC 3696 §2): "1.2.3.4" and
	// "10.0.0" stay addresses, not names.
	return strings.Trim(labels[len(labels)-1], "0123456789") != ""
}
