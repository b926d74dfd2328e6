package discovery

import (
	"errors"
	"testing"
)

// Each group of TXT keys decodes alone.
func TestTXTDecodersAlone(t *testing.T) {
	v, err := splitTXT([]string{"Load=0.5", "overload-threshold=#f", "free-disk=10", ""})
	if err != nil {
		t.Fatal(err)
	}
	a := &Announcement{Load: Unknown, FreeDisk: Unknown}
	f := 0.8
	a.OverloadThreshold = &f
	if err := decodeState(v, a); err != nil || a.Load != 0.5 || a.FreeDisk != 10 || a.OverloadThreshold != nil {
		t.Errorf("decodeState: %+v, %v", a, err)
	}
	if _, err := splitTXT([]string{"load=1", "LOAD=2"}); err == nil || err.Error() != "TXT load: key appears twice" {
		t.Errorf("duplicate key: %v", err)
	}
	for _, tc := range []struct {
		decode func(txtValues, *Announcement) error
		values txtValues
		want   string
	}{
		{decodeVersion, txtValues{}, "TXT txtvers: missing"},
		{decodeVersion, txtValues{"txtvers": "0"}, `TXT txtvers: "0" is not a version number`},
		{decodeOffer, txtValues{"systems": "x86_64-linux", "speed": "0"}, `TXT speed: "0" is not a positive number`},
		{decodeLogin, txtValues{"user": "a@b"}, `TXT user: "a@b" is not a user name`},
		{decodeLogin, txtValues{"user": "root"}, "TXT host-key: missing"},
		{decodeState, txtValues{"overload-threshold": "-1"}, `TXT overload-threshold: "-1" is not a non-negative number or #f`},
		{decodeSignature, txtValues{"ts": "soon"}, `TXT ts: "soon" is not a time in Unix seconds`},
	} {
		err := tc.decode(tc.values, &Announcement{})
		if err == nil || err.Error() != tc.want {
			t.Errorf("%v: got %v, want %s", tc.values, err, tc.want)
		}
		var te *TXTError
		if !errors.As(err, &te) {
			t.Errorf("%v: %T is not a *TXTError", tc.values, err)
		}
	}
}
