// Package tomlconf is what the TOML configuration readers (the agent's
// and the hook's) share: a table of the keys a file may set and the
// [Kind] of each ([Keys], whose Decode checks every key and names the
// file, the line and the key in its errors, which the TOML library does
// not do for type errors), the [Error] type, and [Duration], the type of
// every duration setting in files and on command lines.
package tomlconf
