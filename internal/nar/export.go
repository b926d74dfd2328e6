package nar

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"path"
	"strings"

	"github.com/guix-offload/guix-offload/internal/pki"
)

// exportMagic follows each NAR in an export stream: the bytes "NIXE".
const exportMagic = 0x4558494e

// ErrUnsigned is returned by [Item.Verify] for an item that carries no
// signature.
var ErrUnsigned = errors.New("item is not signed")

// Item is one store item of an export stream, as 'guix archive --export'
// writes it.
type Item struct {
	Path       string   // the store path, e.g. /gnu/store/…-hello-2.12
	References []string // store paths it refers to
	Deriver    string   // the derivation that built it, or ""
	// Signature is the signature S-expression, nil when unsigned.
	Signature []byte
	// Hash is the SHA-256 digest the signature must cover: of the NAR,
	// the "NIXE" marker, the path, the references and the deriver, as
	// they appear in the stream.
	Hash [32]byte
	// NarHash and NarSize describe the NAR alone.
	NarHash [32]byte
	NarSize uint64
}

// Verify checks the item's signature against acl (see [pki.Verify]) and
// returns the signer. An unsigned item fails with [ErrUnsigned].
func (it *Item) Verify(acl *pki.ACL) (*pki.PublicKey, error) {
	if it.Signature == nil {
		return nil, fmt.Errorf("%s: %w", it.Path, ErrUnsigned)
	}
	k, err := pki.Verify(it.Signature, it.Hash, acl)
	if err != nil {
		return k, fmt.Errorf("%s: %w", it.Path, err)
	}
	return k, nil
}

// ExportReader reads a 'guix archive --export' stream item by item,
// never holding a NAR in memory. Start with [NewExportReader] and call
// [ExportReader.Next] until it returns io.EOF.
type ExportReader struct {
	w    *wire
	done bool
	err  error
}

// NewExportReader returns a reader of the export stream r.
func NewExportReader(r io.Reader) *ExportReader { return &ExportReader{w: newWire(r)} }

// Next reads the next item. Its NAR is restored to dst (dst must not
// exist, its parent must; on error nothing is left there), or only
// checked when dst is "". Restoring never writes outside dst: entry names
// that are empty, ".", "..", or hold "/" or NUL, and entries out of order
// or repeated, are refused, and no symbolic link (in the archive or raced
// in) is ever followed. Regular files get mode 0644 or, when executable,
// 0755; directories 0755. Next does not check the signature: call [Item.Verify]
// before trusting what was restored, and check that Path is what you
// asked for. After the last item Next returns nil, io.EOF; after an error
// it keeps returning that error.
//
// For the offload hook's retrieval: restore each item to a fresh
// temporary name inside the store directory, verify, then rename it onto
// the output path; remove the temporary name when anything fails.
func (x *ExportReader) Next(dst string) (*Item, error) {
	if x.err != nil {
		return nil, x.err
	}
	if x.done {
		return nil, io.EOF
	}
	it, err := x.next(dst)
	if err != nil {
		if err == io.EOF {
			x.done = true
			return nil, io.EOF
		}
		x.err = fmt.Errorf("read export stream: %w", err)
		return nil, x.err
	}
	return it, nil
}

func (x *ExportReader) next(dst string) (*Item, error) {
	w := x.w
	more, err := w.u64()
	if err != nil {
		return nil, err
	}
	switch more {
	case 0:
		return nil, io.EOF
	case 1:
	default:
		return nil, formatErr(w.off, "expected 1 (an item follows) or 0 (end), found %d", more)
	}
	signed, narHash := sha256.New(), sha256.New()
	start := w.off
	w.hashes = []hash.Hash{signed, narHash}
	err = restore(w, dst)
	narSize := w.off - start
	w.hashes = []hash.Hash{signed}
	cleanup := func() {}
	if err == nil && dst != "" {
		cleanup = func() { removeAll(dst) }
	}
	it, err2 := x.metadata(err)
	w.hashes = nil
	if err2 != nil {
		cleanup()
		return nil, err2
	}
	it.NarSize = uint64(narSize)
	copy(it.NarHash[:], narHash.Sum(nil))
	copy(it.Hash[:], signed.Sum(nil))
	// The signature is read after the hash is final.
	if err := x.signature(it); err != nil {
		cleanup()
		return nil, err
	}
	return it, nil
}

// metadata reads what follows a NAR up to the deriver; restoreErr is the
// result of restoring the NAR, returned first.
func (x *ExportReader) metadata(restoreErr error) (*Item, error) {
	if restoreErr != nil {
		return nil, restoreErr
	}
	w := x.w
	m, err := w.u64()
	if err != nil {
		return nil, err
	}
	if m != exportMagic {
		return nil, formatErr(w.off, "expected the NIXE marker after the archive, found %#x", m)
	}
	it := &Item{}
	if it.Path, err = storePath(w, "store path"); err != nil {
		return nil, err
	}
	n, err := w.u64()
	if err != nil {
		return nil, err
	}
	if n > maxRefs {
		return nil, formatErr(w.off, "%d references, more than %d", n, maxRefs)
	}
	for i := uint64(0); i < n; i++ {
		ref, err := storePath(w, "reference")
		if err != nil {
			return nil, err
		}
		it.References = append(it.References, ref)
	}
	if it.Deriver, err = w.str(maxPath, "deriver"); err != nil {
		return nil, err
	}
	if it.Deriver != "" && !validPath(it.Deriver) {
		return nil, formatErr(w.off, "deriver %q is not an absolute file name", it.Deriver)
	}
	return it, nil
}

func (x *ExportReader) signature(it *Item) error {
	w := x.w
	has, err := w.u64()
	if err != nil {
		return err
	}
	switch has {
	case 0:
		return nil
	case 1:
		s, err := w.str(maxSignature, "signature")
		if err != nil {
			return err
		}
		it.Signature = []byte(s)
		return nil
	}
	return formatErr(w.off, "expected 1 (signature follows) or 0 (unsigned), found %d", has)
}

func storePath(w *wire, what string) (string, error) {
	p, err := w.str(maxPath, what)
	if err != nil {
		return "", err
	}
	if !validPath(p) {
		return "", formatErr(w.off, "%s %q is not an absolute, clean file name", what, p)
	}
	return p, nil
}

func validPath(p string) bool {
	return strings.HasPrefix(p, "/") && path.Clean(p) == p && p != "/" && !strings.ContainsRune(p, 0)
}

// ExportWriter writes an export stream as 'guix archive --export' does.
// Call [ExportWriter.WriteItem] per item, dependencies first, then
// [ExportWriter.Close].
type ExportWriter struct {
	w *writer
	// CheckNAR, when set, is called with each item's NAR digest and size
	// after its NAR was written and before its metadata and signature:
	// an error stops the item there, unsigned and incomplete, so that a
	// reader imports nothing of it. The daemon's exportPath refuses a
	// path whose contents no longer match its recorded hash likewise.
	CheckNAR func(narHash [32]byte, narSize uint64) error
}

// NewExportWriter returns a writer of an export stream to w.
func NewExportWriter(w io.Writer) *ExportWriter { return &ExportWriter{w: &writer{w: w}} }

// WriteItem writes the file tree at fsPath as the store item path with
// its references and deriver (or ""). When sign is not nil it is called
// with the item's hash (see [Item.Hash]) and must return the signature
// S-expression, for instance [pki.PrivateKey.Sign]; otherwise the item is
// unsigned. The NAR is streamed from disk.
func (x *ExportWriter) WriteItem(path string, refs []string, deriver, fsPath string, sign func([32]byte) ([]byte, error)) error {
	for _, p := range append([]string{path}, refs...) {
		if !validPath(p) {
			return fmt.Errorf("export %s: %q is not an absolute, clean store path", path, p)
		}
	}
	if deriver != "" && !validPath(deriver) {
		return fmt.Errorf("export %s: deriver %q is not an absolute, clean file name", path, deriver)
	}
	w := x.w
	w.u64(1)
	signed := sha256.New()
	narHash := &countingHash{Hash: sha256.New()}
	w.hashes = []hash.Hash{signed, narHash}
	if err := dump(w, fsPath); err != nil {
		w.hashes = nil
		return fmt.Errorf("export %s: %w", path, err)
	}
	w.hashes = []hash.Hash{signed}
	if x.CheckNAR != nil && w.err == nil {
		var sum [32]byte
		copy(sum[:], narHash.Sum(nil))
		if err := x.CheckNAR(sum, narHash.n); err != nil {
			w.hashes = nil
			return fmt.Errorf("export %s: %w", path, err)
		}
	}
	w.u64(exportMagic)
	w.str(path)
	w.u64(uint64(len(refs)))
	for _, r := range refs {
		w.str(r)
	}
	w.str(deriver)
	w.hashes = nil
	if sign == nil {
		w.u64(0)
	} else {
		var h [32]byte
		copy(h[:], signed.Sum(nil))
		sig, err := sign(h)
		if err != nil {
			return fmt.Errorf("export %s: %w", path, err)
		}
		w.u64(1)
		w.str(string(sig))
	}
	if w.err != nil {
		return fmt.Errorf("export %s: %w", path, w.err)
	}
	return nil
}

// Close writes the end of the stream. It does not close the underlying
// writer.
func (x *ExportWriter) Close() error {
	x.w.u64(0)
	return x.w.err
}

// countingHash is a hash that also counts what it was fed.
type countingHash struct {
	hash.Hash
	n uint64
}

func (c *countingHash) Write(p []byte) (int, error) {
	c.n += uint64(len(p))
	return c.Hash.Write(p)
}
