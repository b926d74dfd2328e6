package tomlconf

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// A Kind checks the value of a key as the TOML library decodes it into
// an any, and says what it must be when it is not.
type Kind func(v any) error

// String is the [Kind] of a string key.
func String(v any) error {
	if _, ok := v.(string); !ok {
		return fmt.Errorf("must be a string, not %s", TypeName(v))
	}
	return nil
}

// Strings is the [Kind] of a list of strings.
func Strings(v any) error {
	list, ok := v.([]any)
	if !ok {
		return fmt.Errorf("must be a list of strings such as [\"a\", \"b\"], not %s", TypeName(v))
	}
	for i, it := range list {
		if _, ok := it.(string); !ok {
			return fmt.Errorf("item %d must be a string, not %s", i+1, TypeName(it))
		}
	}
	return nil
}

// Int is the [Kind] of an integer key.
func Int(v any) error {
	if _, ok := v.(int64); !ok {
		return fmt.Errorf("must be an integer, not %s", TypeName(v))
	}
	return nil
}

// Number is the [Kind] of a key that takes an integer or a float.
func Number(v any) error {
	switch v.(type) {
	case int64, float64:
		return nil
	}
	return fmt.Errorf("must be a number, not %s", TypeName(v))
}

// Bool is the [Kind] of a boolean key.
func Bool(v any) error {
	if _, ok := v.(bool); !ok {
		return fmt.Errorf("must be true or false, not %s", TypeName(v))
	}
	return nil
}

// DurationString is the [Kind] of a [Duration] key.
func DurationString(v any) error {
	s, ok := v.(string)
	if !ok {
		return fmt.Errorf("must be a duration string such as \"30s\", not %s", TypeName(v))
	}
	var d Duration
	return d.UnmarshalText([]byte(s))
}

// Table is the [Kind] of a table whose keys are keys; what describes it
// in the message for a value that is not a table. A problem with one of
// its keys names it TABLE.KEY.
func Table(keys Keys, what string) Kind {
	return func(v any) error {
		t, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("must be a table (%s), not %s", what, TypeName(v))
		}
		for _, key := range slices.Sorted(maps.Keys(t)) {
			if err := keys.check(key, t[key]); err != nil {
				return err
			}
		}
		return nil
	}
}

// Keys are the keys of a configuration file and the [Kind] of each.
type Keys map[string]Kind

// Names returns the keys, sorted.
func (k Keys) Names() []string { return slices.Sorted(maps.Keys(k)) }

// Decode decodes text, the contents of the configuration file file, over
// v (a pointer to a struct whose toml tags are the keys of k). Every key
// is checked first, in the order of the file: an unknown key or a value
// of the wrong kind, like a syntax error, is an [*Error] naming file, the
// line and the key. Decode does not validate the values.
func (k Keys) Decode(file, text string, v any) error {
	// First into a map, to check every key and its type ourselves: the
	// TOML library's type errors carry neither the key nor the line in a
	// form we can rely on.
	if line, ok := tooDeep(text); !ok {
		return &Error{File: file, Line: line, Err: fmt.Errorf("tables or arrays nested more than %d deep; no configuration key takes that", maxNesting)}
	}
	var raw map[string]any
	if _, err := toml.Decode(text, &raw); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return &Error{File: file, Line: pe.Position.Line, Key: pe.LastKey, Err: errors.New(pe.Message)}
		}
		return &Error{File: file, Err: err}
	}
	for _, key := range KeysInOrder(text, raw) {
		if err := k.check(key, raw[key]); err != nil {
			var e *Error
			errors.As(err, &e)
			e.File = file
			// The innermost key's line: the first definition of that
			// name, as near as this line search gets.
			e.Line = KeyLine(text, e.Key[strings.LastIndex(e.Key, ".")+1:])
			return e
		}
	}
	md, err := toml.Decode(text, v)
	if err != nil {
		return &Error{File: file, Err: err}
	}
	if und := md.Undecoded(); len(und) > 0 {
		e := k.unknown(und[0][0])
		e.File, e.Line = file, KeyLine(text, und[0][0])
		return e
	}
	return nil
}

// maxNesting bounds how deeply inline tables and arrays nest. The TOML
// library's memory grows steeply with depth (100 KB of nested inline
// tables took 1.3 GB), and no key of ours nests more than twice.
const maxNesting = 16

// tooDeep scans text for brackets and braces outside strings and
// comments, and returns the line where they first nest deeper than
// maxNesting, and ok false then.
func tooDeep(text string) (line int, ok bool) {
	line, depth := 1, 0
	for i := 0; i < len(text); i++ {
		switch c := text[i]; c {
		case '\n':
			line++
		case '#':
			for i+1 < len(text) && text[i+1] != '\n' {
				i++
			}
		case '"', '\'':
			delim := string(c)
			if strings.HasPrefix(text[i:], strings.Repeat(delim, 3)) {
				delim = strings.Repeat(delim, 3)
			}
			i += len(delim)
			for i < len(text) && !strings.HasPrefix(text[i:], delim) {
				if text[i] == '\n' {
					line++
				}
				if c == '"' && text[i] == '\\' {
					i++
				}
				i++
			}
			i += len(delim) - 1
		case '[', '{':
			if depth++; depth > maxNesting {
				return line, false
			}
		case ']', '}':
			depth = max(depth-1, 0)
		}
	}
	return line, true
}

// check checks the value v of key; a problem is an [*Error] naming the
// key (TABLE.KEY inside a table) without file or line.
func (k Keys) check(key string, v any) error {
	kind, ok := k[key]
	if !ok {
		return k.unknown(key)
	}
	if err := kind(v); err != nil {
		var inner *Error
		if errors.As(err, &inner) {
			inner.Key = key + "." + inner.Key
			return inner
		}
		return &Error{Key: key, Err: err}
	}
	return nil
}

func (k Keys) unknown(key string) *Error {
	return &Error{Key: key, Err: fmt.Errorf("unknown key%s (known keys: %s)", Suggest(key, k.Names()), strings.Join(k.Names(), ", "))}
}
