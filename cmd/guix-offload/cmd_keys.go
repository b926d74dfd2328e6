package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/guix-offload/guix-offload/internal/cli"
	"github.com/guix-offload/guix-offload/internal/pki"
)

type keysShowOptions struct {
	compact bool
}

func newKeysCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Inspect Guix signing keys, ACLs and signatures",
		Long: `keys reads Guix's own key files (signing-key.pub and .sec, /etc/guix/acl,
signatures) and shows the fingerprints that discover, the agent and the
hook print, to tell which key is which.`,
		Example: `  guix-offload keys show /etc/guix/acl
  ssh builder1 cat /etc/guix/signing-key.pub | guix-offload keys show -`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newKeysShowCommand())
	return cmd
}

func newKeysShowCommand() *cobra.Command {
	var opts keysShowOptions
	cmd := &cobra.Command{
		Use:   "show FILE",
		Short: "Print the type and fingerprint of a key, an ACL's keys, or a signature's signer",
		Long: `show reads FILE ("-" for standard input) and prints what it holds:

  signing-key.pub, signing-key.sec   the key's type and fingerprint
  /etc/guix/acl                      one line per authorized key
  a signature S-expression           its signer and the hash it signs

A secret key is never printed, only its public half. The fingerprint is
the first 16 bytes of the SHA-256 of the public key's canonical
S-expression, in hex groups of four.`,
		Example: `  guix-offload keys show /etc/guix/signing-key.pub
  guix-offload keys show --compact /etc/guix/acl`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runKeysShow(opts, args[0], cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().BoolVar(&opts.compact, "compact", false, "also print keys in the compact form of DNS-SD announcements")
	return cmd
}

func runKeysShow(opts keysShowOptions, file string, stdin io.Reader, stdout, stderr io.Writer) error {
	var data []byte
	var err error
	if file == "-" {
		data, err = io.ReadAll(stdin)
	} else {
		data, err = os.ReadFile(file)
	}
	if err != nil {
		return err
	}
	v, err := pki.Parse(data, file)
	if err != nil {
		return cli.WithHint(err, "keys show reads signing-key.pub, signing-key.sec, /etc/guix/acl or a signature")
	}
	show := func(k *pki.PublicKey, note string) {
		fmt.Fprintf(stdout, "%s%s\n", k, note)
		if opts.compact {
			if c, err := k.Compact(); err == nil {
				fmt.Fprintf(stdout, "  compact: %s\n", c)
			} else {
				fmt.Fprintf(stdout, "  compact: none: %v\n", err)
			}
		}
	}
	switch v := v.(type) {
	case *pki.PublicKey:
		show(v, "")
	case *pki.PrivateKey:
		show(v.Public(), " (secret key)")
	case *pki.ACL:
		for _, k := range v.Keys() {
			show(k, "")
		}
		for _, e := range v.Unsupported {
			fmt.Fprintf(stderr, "guix-offload: warning: %v: this entry authorizes nothing here\n", e)
		}
		if len(v.Keys()) == 0 && len(v.Unsupported) == 0 {
			fmt.Fprintln(stderr, "guix-offload: warning: the ACL is empty: no archive is accepted")
		}
	case *pki.Signature:
		show(v.Signer, fmt.Sprintf(" signed sha256 %x", v.Hash))
	default:
		return errors.New("unexpected S-expression")
	}
	return nil
}
