package diff

import "testing"

func TestQuote(t *testing.T) {
	for p, want := range map[string]string{
		"":                   ".",
		"a/b c.txt":          "a/b c.txt",
		"ünï/日本":             "ünï/日本",
		"bad\xff":            `"bad\xff"`,
		"tab\there":          `"tab\there"`,
		"new\nline":          `"new\nline"`,
		`"quoted"`:           `"\"quoted\""`,
		`back\slash`:         `"back\\slash"`,
		"bidi\u202eoverride": `"bidi\u202eoverride"`,
	} {
		if got := Quote(p); got != want {
			t.Errorf("Quote(%q) = %s, want %s", p, got, want)
		}
	}
}

func TestAttrsNames(t *testing.T) {
	if got := (Mode | MTime | Links).Names(); len(got) != 3 || got[0] != "mode" || got[1] != "mtime" || got[2] != "links" {
		t.Errorf("Names = %q", got)
	}
}
