package main

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// The README tour, run as a testscript (testdata/tour.txtar) in the style
// of filippo.io/age's: each "tour" line of the script is a line of the
// README's tour, run as written (./pdvault and ./pdvault-org are the
// binaries built from this checkout; ~ is the script's $HOME). Between
// them the script captures the ids a reader would copy (capture VAR RE),
// and checks what a reader would see. TestTourMatchesREADME checks that
// the script's tour lines are the README's, in order, so neither can
// change without the other.

func TestTour(t *testing.T) {
	if ln, err := net.Listen("tcp", "127.0.0.1:8700"); err != nil {
		t.Fatalf("the tour serves on 127.0.0.1:8700 as the README says, and that port is busy: %v", err)
	} else {
		ln.Close()
	}
	bin := t.TempDir()
	for _, name := range []string{"pdvault", "pdvault-org"} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(bin, name), "../"+name).CombinedOutput()
		if err != nil {
			t.Fatalf("go build %s: %v\n%s", name, err, out)
		}
	}
	testscript.Run(t, testscript.Params{
		Files: []string{"testdata/tour.txtar"},
		Setup: func(env *testscript.Env) error {
			env.Setenv("PDVAULT_BIN", bin)
			env.Setenv("HOME", filepath.Join(env.WorkDir, "home"))
			if err := os.Mkdir(filepath.Join(env.WorkDir, "home"), 0o700); err != nil {
				return err
			}
			env.Setenv("XDG_CONFIG_HOME", filepath.Join(env.WorkDir, ".config"))
			env.Setenv("XDG_DATA_HOME", filepath.Join(env.WorkDir, ".local", "share"))
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"tour":    tourCmd,
			"capture": captureCmd,
		},
	})
}

// tourEnv are the variables a tour command sees.
var tourEnv = []string{"HOME", "PATH", "TMPDIR", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "PDVAULT_PASSPHRASE", "PDVAULT_NEW_PASSPHRASE", "PDVAULT_ADDR", "PDVAULT_TOKEN", "PDVAULT_DIR"}

// tourCmd runs one README line. testscript has split it on spaces,
// honouring single quotes; double-quoted words are joined here, ~/ is
// $HOME/, and the three shell forms the README uses are understood:
// go build -o NAME ./cmd/NAME, eval "$(CMD)", and a server left running.
func tourCmd(ts *testscript.TestScript, neg bool, args []string) {
	args = joinDoubleQuoted(args)
	for i, a := range args {
		if strings.HasPrefix(a, "~/") {
			args[i] = ts.Getenv("HOME") + a[1:]
		}
	}
	if len(args) == 0 {
		ts.Fatalf("tour: nothing to run")
	}
	switch {
	case args[0] == "go":
		// go build -o NAME ./cmd/NAME: the test built it already.
		if len(args) != 5 || args[1] != "build" || args[2] != "-o" || args[4] != "./cmd/"+args[3] {
			ts.Fatalf("tour: unexpected go command %q", args)
		}
		b, err := os.ReadFile(filepath.Join(ts.Getenv("PDVAULT_BIN"), args[3]))
		ts.Check(err)
		ts.Check(os.WriteFile(ts.MkAbs(args[3]), b, 0o755))
		return
	case args[0] == "eval":
		// eval "$(CMD ARGS)": run it and take the export lines it prints.
		inner := strings.TrimSuffix(strings.TrimPrefix(strings.Join(args[1:], " "), "$("), ")")
		err := ts.Exec("sh", "-c", inner)
		if err != nil {
			ts.Fatalf("tour: %s: %v", inner, err)
		}
		sc := bufio.NewScanner(strings.NewReader(ts.ReadFile("stdout")))
		for sc.Scan() {
			if k, v, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "export "), "="); ok {
				ts.Setenv(k, v)
			}
		}
		return
	case len(args) > 1 && args[1] == "serve":
		// Left running, as in "another terminal"; stopped at the end.
		cmd := exec.Command(ts.MkAbs(args[0]), args[1:]...)
		cmd.Dir = ts.MkAbs(".")
		for _, k := range tourEnv {
			cmd.Env = append(cmd.Env, k+"="+ts.Getenv(k))
		}
		out, err := os.Create(ts.MkAbs("serve.log"))
		ts.Check(err)
		cmd.Stdout, cmd.Stderr = out, out
		ts.Check(cmd.Start())
		ts.Defer(func() { cmd.Process.Signal(os.Interrupt); cmd.Wait(); out.Close() })
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if c, err := net.Dial("tcp", "127.0.0.1:8700"); err == nil {
				c.Close()
				return
			}
			if time.Now().After(deadline) {
				b, _ := os.ReadFile(ts.MkAbs("serve.log"))
				ts.Fatalf("tour: serve did not start:\n%s", b)
			}
		}
	}
	if strings.HasPrefix(args[0], "./") {
		args[0] = ts.MkAbs(args[0])
	}
	err := ts.Exec(args[0], args[1:]...)
	if err != nil && !neg {
		ts.Fatalf("tour: %v\nstderr: %s", err, ts.ReadFile("stderr"))
	}
	if err == nil && neg {
		ts.Fatalf("tour: unexpected success")
	}
}

// joinDoubleQuoted joins "several words" that testscript split (it quotes
// with single quotes only) back into one argument.
func joinDoubleQuoted(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if strings.HasPrefix(a, `"`) && !(len(a) > 1 && strings.HasSuffix(a, `"`)) {
			parts := []string{a}
			for i+1 < len(args) && !strings.HasSuffix(parts[len(parts)-1], `"`) {
				i++
				parts = append(parts, args[i])
			}
			a = strings.Join(parts, " ")
		}
		if len(a) >= 2 && strings.HasPrefix(a, `"`) && strings.HasSuffix(a, `"`) {
			a = a[1 : len(a)-1]
		}
		out = append(out, a)
	}
	return out
}

// capture VAR REGEXP: set VAR to the first group of REGEXP in the last
// command's stdout and stderr, as a reader copies an id from the screen.
func captureCmd(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: capture VAR REGEXP")
	}
	re, err := regexp.Compile(args[1])
	ts.Check(err)
	m := re.FindStringSubmatch(ts.ReadFile("stdout") + ts.ReadFile("stderr"))
	if m == nil || len(m) < 2 {
		ts.Fatalf("capture %s: %q not in the output:\n%s%s", args[0], args[1], ts.ReadFile("stdout"), ts.ReadFile("stderr"))
	}
	ts.Setenv(args[0], m[1])
}

// tourLines are the command lines of the README's tour: comments dropped,
// continuations joined, spaces collapsed.
func tourLines(readme string) []string {
	_, after, ok := strings.Cut(readme, "## A short tour")
	if !ok {
		return nil
	}
	_, block, _ := strings.Cut(after, "```sh\n")
	block, _, _ = strings.Cut(block, "```")
	block = strings.ReplaceAll(block, "\\\n", " ")
	var out []string
	for _, l := range strings.Split(block, "\n") {
		l = stripComment(l)
		if l = strings.Join(strings.Fields(l), " "); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// stripComment drops a shell comment: a # at the start of a word, outside
// quotes.
func stripComment(l string) string {
	var q rune
	for i, r := range l {
		switch {
		case q != 0:
			if r == q {
				q = 0
			}
		case r == '\'' || r == '"':
			q = r
		case r == '#' && (i == 0 || l[i-1] == ' ' || l[i-1] == '\t'):
			return l[:i]
		}
	}
	return l
}

// scriptVar are the placeholders a reader replaces by hand.
var scriptVar = regexp.MustCompile(`\$(ID|REQUEST_ID|GRANT_ID|ENTRY|INTENT_ID|OFFER_ID)\b`)

func TestTourMatchesREADME(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile("testdata/tour.txtar")
	if err != nil {
		t.Fatal(err)
	}
	want := tourLines(string(readme))
	if len(want) < 30 {
		t.Fatalf("found %d tour lines in README.md; the tour section is missing or changed shape", len(want))
	}
	var got []string
	for _, l := range strings.Split(string(script), "\n") {
		l = strings.TrimPrefix(strings.TrimSpace(l), "! ")
		if cmd, ok := strings.CutPrefix(l, "tour "); ok {
			// $NAME in the script is the NAME a reader replaces by hand.
			got = append(got, strings.Join(strings.Fields(scriptVar.ReplaceAllString(cmd, "$1")), " "))
		}
	}
	for i := range max(len(got), len(want)) {
		g, w := "(none)", "(none)"
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			t.Fatalf("tour line %d differs:\nREADME.md:          %s\ntestdata/tour.txtar: %s", i+1, w, g)
		}
	}
}
