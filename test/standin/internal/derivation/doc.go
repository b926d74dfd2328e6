// Package derivation reads and writes Guix derivation files (`.drv`), the
// ATerm text the daemon builds from:
//
//	Derive([("out","/gnu/store/…-hello","","")],
//	       [("/gnu/store/…-dep.drv",["out"])],
//	       ["/gnu/store/…-builder.sh"],
//	       "x86_64-linux","/bin/sh",["-e","…"],
//	       [("out","/gnu/store/…-hello"),("name","hello")])
//
// (one line in a real file). Start with [Parse]; [Derivation.String]
// writes the exact form back. It belongs to the Guix stand-in used by
// tests and is never shipped.
package derivation
