package tomlconf

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// KeyLine returns the line (from 1) where the top-level key or table key
// is defined in text, or 0 when it cannot be found.
func KeyLine(text, key string) int {
	for i, line := range strings.Split(text, "\n") {
		s := strings.TrimSpace(line)
		s = strings.TrimLeft(s, "[")
		s = strings.TrimSpace(s)
		for _, form := range []string{key, `"` + key + `"`, "'" + key + "'"} {
			if rest, ok := strings.CutPrefix(s, form); ok {
				rest = strings.TrimSpace(rest)
				if rest == "" || rest[0] == '=' || rest[0] == '.' || rest[0] == ']' {
					return i + 1
				}
			}
		}
	}
	return 0
}

// KeysInOrder returns the keys of raw (the top level of text, decoded
// into a map) in the order text defines them, so the first problem in the
// file is the one reported.
func KeysInOrder(text string, raw map[string]any) []string {
	keys := slices.Collect(maps.Keys(raw))
	slices.SortFunc(keys, func(a, b string) int {
		return cmp.Or(cmp.Compare(KeyLine(text, a), KeyLine(text, b)), cmp.Compare(a, b))
	})
	return keys
}

// TypeName names the type of the TOML value v (as the library decodes it
// into an any) for messages: "a string", "an integer", ….
func TypeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []any, []map[string]any:
		return "a list"
	case map[string]any:
		return "a table"
	case time.Time:
		return "a date or time"
	}
	return fmt.Sprintf("%T", v)
}

// Suggest returns ` (did you mean "KEY"?)` for the known key nearest to
// key when it is a near miss (at most two edits), else "".
func Suggest(key string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		if d := editDistance(strings.ToLower(key), k); d < bestDist || d == bestDist && best != "" && k < best {
			best, bestDist = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Error is a problem with one key of a configuration, naming the file, the
// line (and column, for a syntax error) when known, and the key:
// "FILE:LINE: key: problem".
type Error struct {
	File   string
	Line   int
	Column int
	Key    string
	Err    error
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
			if e.Column > 0 {
				fmt.Fprintf(&b, ":%d", e.Column)
			}
		}
		b.WriteString(": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }
