package extract

import (
	"errors"
	"strings"
	"testing"
)

func TestLocalName(t *testing.T) {
	for _, c := range []struct {
		name, unix, windows string
	}{
		{"plain.txt", "plain.txt", "plain.txt"},
		{"..\\..\\evil", "..\\..\\evil", "..＼..＼evil"},
		{"..\\", "..\\", "..＼"},
		{"C:", "C:", "C："},
		{"C:\\Windows\\evil", "C:\\Windows\\evil", "C：＼Windows＼evil"},
		{"c:evil", "c:evil", "c：evil"},
		{"\\\\server\\share", "\\\\server\\share", "＼＼server＼share"},
		{"file.txt:stream", "file.txt:stream", "file.txt：stream"},
		{`<>"|?*`, `<>"|?*`, "＜＞＂｜？＊"},
		{"tab\there\x01\x1f", "tab\there\x01\x1f", "tab␉here␁␟"},
		{"trailing.", "trailing.", "trailing．"},
		{"trailing ", "trailing ", "trailing␠"},
		{"...", "...", "..．"},
		{". ", ". ", ".␠"},
		{" ", " ", "␠"},
		{" leading", " leading", " leading"},
		{"CON", "CON", "ＣON"},
		{"con", "con", "ｃon"},
		{"nul.txt", "nul.txt", "ｎul.txt"},
		{"Aux .tar.gz", "Aux .tar.gz", "Ａux .tar.gz"},
		{"PRN ", "PRN ", "PRN␠"}, // no longer a device name once the space is replaced
		{"COM1", "COM1", "ＣOM1"},
		{"lpt9.log", "lpt9.log", "ｌpt9.log"},
		{"COM0", "COM0", "ＣOM0"},
		{"COM¹", "COM¹", "ＣOM¹"},
		{"CONIN$", "CONIN$", "ＣONIN$"},
		{"conout$.x", "conout$.x", "ｃonout$.x"},
		{"COM10", "COM10", "COM10"},
		{"CONSOLE", "CONSOLE", "CONSOLE"},
		{"LPT", "LPT", "LPT"},
		{"xNUL", "xNUL", "xNUL"},
		{"\xff\xfe", "\xff\xfe", "\uFFFD\uFFFD"},
	} {
		for _, win := range []bool{false, true} {
			want := c.unix
			if win {
				want = c.windows
			}
			got, changed, err := localName(c.name, win)
			if err != nil || got != want || changed != (want != c.name) {
				t.Errorf("localName(%q, windows=%v) = %q, %v, %v; want %q", c.name, win, got, changed, err, want)
			}
		}
	}
}

func TestLocalNameRejectsUnsafe(t *testing.T) {
	for _, name := range []string{"", ".", "..", "a/b", "/", "../x", "/etc/passwd", "a\x00b", "x/.."} {
		for _, win := range []bool{false, true} {
			if got, _, err := localName(name, win); !errors.Is(err, errUnsafeName) {
				t.Errorf("localName(%q, windows=%v) = %q, %v; want errUnsafeName", name, win, got, err)
			}
		}
	}
}

func TestJoinName(t *testing.T) {
	for _, c := range []struct {
		dir, name string
		windows   bool
		want      string
	}{
		{"/dest", "a", false, "/dest/a"},
		{"/dest/", "a", false, "/dest/a"},
		{"out", "..\\x", false, "out/..\\x"},
		{"/dest", "C:", false, "/dest/C:"},
		{`C:\dest`, "a", true, `C:\dest\a`},
		{`C:\dest\`, "a", true, `C:\dest\a`},
		{`C:/dest/`, "a", true, `C:/dest/a`},
		{`C:`, "a", true, `C:a`},
		{`C:\dest`, `..\..\evil`, true, `C:\dest\..＼..＼evil`},
		{`C:\dest`, `D:\evil`, true, `C:\dest\D：＼evil`},
		{`\\srv\share\dest`, "NUL", true, `\\srv\share\dest\ＮUL`},
		{`dest`, "x.", true, `dest\x．`},
	} {
		got, _, err := joinName(c.dir, c.name, c.windows)
		if err != nil || got != c.want {
			t.Errorf("joinName(%q, %q, windows=%v) = %q, %v; want %q", c.dir, c.name, c.windows, got, err, c.want)
		}
		// Whatever the name, the result is one component below dir.
		sep := "/"
		if c.windows {
			sep = `\`
		}
		rest := strings.TrimPrefix(got, c.dir)
		rest = strings.TrimPrefix(rest, sep)
		if !strings.HasPrefix(got, c.dir) || rest == "" || strings.ContainsAny(rest, `/`) ||
			(c.windows && strings.ContainsAny(rest, `\:`)) || rest == "." || rest == ".." {
			t.Errorf("joinName(%q, %q, windows=%v) = %q is not a direct child", c.dir, c.name, c.windows, got)
		}
	}
	for _, name := range []string{"", ".", "..", "a/b"} {
		if _, _, err := joinName("/dest", name, false); err == nil {
			t.Errorf("joinName(/dest, %q) did not fail", name)
		}
	}
}
