package extract

import (
	"errors"
	"path"
	"strings"
	"unicode/utf8"
)

// errUnsafeName is a stored name that cannot be a single file name on any
// platform: empty, "." or "..", or holding '/' or NUL. The tree decoder
// already rejects these; the joiner checks again so that no name can lead
// outside the destination, whatever a store holds.
var errUnsafeName = errors.New("unsafe entry name")

// localName returns the name under which a stored entry name is created on
// disk: the name itself on Unix, and on Windows (windows set) the name with
// what Windows cannot hold in a file name replaced by look-alike
// characters, as rclone does: \ / : * ? " < > | and control characters;
// a trailing dot or space; and device names (CON, NUL, COM1, LPT1, … with
// or without an extension), whose first letter becomes its full-width form.
// changed reports whether the name was rewritten.
func localName(name string, windows bool) (local string, changed bool, err error) {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return "", false, errUnsafeName
	}
	if !windows {
		return name, false, nil
	}
	var b strings.Builder
	for _, r := range name {
		switch {
		case r < 0x20:
			r += 0x2400 // ␁ … ␟, the control pictures
		case strings.ContainsRune(`\/:*?"<>|`, r):
			r += 0xfee0 // the full-width forms: ＼ ／ ： ＊ ？ ＂ ＜ ＞ ｜
		}
		b.WriteRune(r)
	}
	local = b.String()
	switch r, size := utf8.DecodeLastRuneInString(local); r {
	case '.':
		local = local[:len(local)-size] + "．"
	case ' ':
		local = local[:len(local)-size] + "␠"
	}
	if reservedOnWindows(local) {
		r, size := utf8.DecodeRuneInString(local)
		local = string(r+0xfee0) + local[size:]
	}
	return local, local != name, nil
}

// reservedOnWindows reports whether Windows opens a device instead of a
// file by this name: CON, PRN, AUX, NUL, COM0–COM9, LPT0–LPT9 (with
// superscript digits too), CONIN$ and CONOUT$, in any case, alone or
// followed by spaces or an extension.
func reservedOnWindows(name string) bool {
	base, _, _ := strings.Cut(name, ".")
	base = strings.ToUpper(strings.TrimRight(base, " "))
	switch base {
	case "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$":
		return true
	}
	if len(base) < 4 || (base[:3] != "COM" && base[:3] != "LPT") {
		return false
	}
	switch base[3:] {
	case "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "¹", "²", "³":
		return true
	}
	return false
}

// joinName returns the path of entry name inside directory dir:
// localName(name) joined to dir with '\' on Windows (windows set) and as
// path.Join does otherwise. The result is always a direct child of dir.
func joinName(dir, name string, windows bool) (p string, changed bool, err error) {
	local, changed, err := localName(name, windows)
	if err != nil {
		return "", false, err
	}
	if !windows {
		return path.Join(dir, local), changed, nil
	}
	if dir == "" || strings.ContainsAny(dir[len(dir)-1:], `\/:`) { // "C:" is the drive's current directory
		return dir + local, changed, nil
	}
	return dir + `\` + local, changed, nil
}
