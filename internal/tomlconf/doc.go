// Package tomlconf helps the TOML configuration readers (the agent's and
// the hook's) name the file, the line and the key in their errors, which
// the TOML library does not do for type and validation errors. Start
// with [KeysInOrder] and [KeyLine]; [TypeName] and [Suggest] word the
// messages.
package tomlconf
