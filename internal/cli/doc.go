// Package cli holds what the guix-offload commands share for talking to
// people: error and hint printing and exit statuses. Start with [PrintError].
package cli
