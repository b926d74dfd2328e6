package cmdutil

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/guix-offload/guix-offload/internal/cli"
)

type toyOptions struct {
	discovered bool
	timeout    time.Duration
}

func toy(opts *toyOptions, fail error) *cobra.Command {
	root := &cobra.Command{Use: "toy", Short: "t", Long: "toy", Example: "  toy sub"}
	sub := &cobra.Command{
		Use: "sub", Short: "s", Long: "sub", Example: "  toy sub --no-discovered",
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return fail },
	}
	sub.Flags().BoolVar(&opts.discovered, "discovered", true, "use discovered machines")
	DurationVar(sub.Flags(), &opts.timeout, "timeout", time.Minute, "give up after this long")
	root.AddCommand(sub)
	Setup(root, "1.2.3")
	return root
}

func TestConventions(t *testing.T) {
	for _, tc := range []struct {
		name       string
		args       []string
		fail       error
		code       int
		out, err   string
		discovered bool
		timeout    time.Duration
	}{
		{name: "version", args: []string{"--version"}, out: "toy (guix-offload) 1.2.3\n", discovered: true, timeout: time.Minute},
		{name: "V", args: []string{"-V"}, out: "toy (guix-offload) 1.2.3\n", discovered: true, timeout: time.Minute},
		{name: "version on a subcommand", args: []string{"sub", "-V"}, out: "toy (guix-offload) 1.2.3\n", discovered: true, timeout: time.Minute},
		{name: "v is not version", args: []string{"-v"}, code: 2, err: "unknown shorthand flag: 'v'", discovered: true, timeout: time.Minute},
		{name: "negation", args: []string{"sub", "--no-discovered"}, timeout: time.Minute},
		{name: "plain seconds", args: []string{"sub", "--timeout", "30"}, discovered: true, timeout: 30 * time.Second},
		{name: "duration with unit", args: []string{"sub", "--timeout=2m"}, discovered: true, timeout: 2 * time.Minute},
		{name: "bad duration", args: []string{"sub", "--timeout", "soon"}, code: 2, err: "hint: try 'toy sub --help'", discovered: true, timeout: time.Minute},
		{name: "unknown flag", args: []string{"sub", "--bogus"}, code: 2, err: "toy: error: unknown flag: --bogus\ntoy: hint: try 'toy sub --help' for more information\n", discovered: true, timeout: time.Minute},
		{name: "unknown command", args: []string{"nope"}, code: 2, err: `unknown command "nope"`, discovered: true, timeout: time.Minute},
		{name: "extra argument", args: []string{"sub", "x"}, code: 2, err: `unknown command "x" for "toy sub"`, discovered: true, timeout: time.Minute},
		{name: "command error", args: []string{"sub"}, fail: errors.New("it broke"), code: 1, err: "toy: error: it broke\n", discovered: true, timeout: time.Minute},
		{name: "command usage error", args: []string{"sub"}, fail: Usage(errors.New("bad value")), code: 2, err: "toy: error: bad value\n", discovered: true, timeout: time.Minute},
		{name: "command exit status", args: []string{"sub"}, fail: cli.ExitError{Code: 100}, code: 100, discovered: true, timeout: time.Minute},
		{name: "interrupted", args: []string{"sub"}, fail: context.Canceled, code: 130, discovered: true, timeout: time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opts toyOptions
			var out, errOut bytes.Buffer
			code := Execute(context.Background(), toy(&opts, tc.fail), "toy", tc.args, &out, &errOut)
			if code != tc.code {
				t.Errorf("exit status %d, want %d; stderr:\n%s", code, tc.code, errOut.String())
			}
			if tc.out != "" && !strings.HasPrefix(out.String(), tc.out) {
				t.Errorf("stdout %q, want it to start with %q", out.String(), tc.out)
			}
			if !strings.Contains(errOut.String(), tc.err) || (tc.err == "" && errOut.Len() > 0) {
				t.Errorf("stderr %q, want %q", errOut.String(), tc.err)
			}
			if code == 0 && (opts.discovered != tc.discovered || opts.timeout != tc.timeout) {
				t.Errorf("discovered %v timeout %v, want %v %v", opts.discovered, opts.timeout, tc.discovered, tc.timeout)
			}
		})
	}
}

func TestLint(t *testing.T) {
	var opts toyOptions
	root := toy(&opts, nil)
	if p := Lint(root); len(p) != 0 {
		t.Errorf("Lint: %v", p)
	}
	root.AddCommand(&cobra.Command{Use: "bare", Run: func(*cobra.Command, []string) {}})
	if p := Lint(root); len(p) != 2 {
		t.Errorf("Lint of a bare command: %v", p)
	}
}
