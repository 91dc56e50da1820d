package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pluto-sched/pluto/internal/auth"
	"github.com/pluto-sched/pluto/internal/bearer"
)

// The token a command sends is, in order of precedence:
//
//  1. --token (an explicit --token "" sends none and reads no file);
//  2. the PLUTO_TOKEN environment variable;
//  3. only when the server is on this machine (its host is loopback:
//     127.0.0.0/8, ::1 or localhost), the admin token that `pluto dev`
//     wrote to <data dir>/admin.token: $PLUTO_DATA/admin.token if
//     PLUTO_DATA is set, else ./pluto-data/admin.token (pluto dev's
//     default --data, relative to the working directory);
//  4. none.
//
// The file is read only for a loopback server so that a dev admin token
// is never sent to another machine.

const (
	envData        = "PLUTO_DATA"
	defaultDataDir = "pluto-data"
	adminTokenFile = "admin.token"
	// maxTokenFile bounds what is read from a token file; a secret is 47
	// bytes.
	maxTokenFile = 4 << 10
)

// tokenHelp is the precedence above, for command help.
const tokenHelp = `Token: --token, else env ` + envToken + `, else — only for a server on this
machine (127.0.0.0/8, ::1, localhost) — the admin token pluto dev writes
to $` + envData + `/` + adminTokenFile + ` (` + envData + ` set) or ./` + defaultDataDir + `/` + adminTokenFile + `.
--token "" sends no token.`

// workerTokenHelp is the precedence for pluto worker's help.
const workerTokenHelp = `The worker authenticates with --token (env ` + envToken + `), a token of role
worker (pluto token create --role worker). Without either, and when every
--server is on this machine, it uses the admin token pluto dev wrote:
$` + envData + `/` + adminTokenFile + `, or ./` + defaultDataDir + `/` + adminTokenFile + `. A refused token is
retried every 5 seconds, with an error logged each time.`

// workerToken picks pluto worker's token (the same precedence as client
// commands, for the gRPC addresses) and checks it can travel as gRPC
// metadata.
func (a *app) workerToken(cmd *cobra.Command, flagValue string, addrs []string) (string, error) {
	ts, err := resolveToken(cmd.Flags().Changed("token"), flagValue, a.getenv, addrs...)
	if err != nil {
		return "", err
	}
	if ts.token != "" {
		if err := bearer.Check(ts.token); err != nil {
			return "", usageErrorf("invalid token from %s: %v", ts.from, err)
		}
	}
	return ts.token, nil
}

// tokenSource tells where the token a command sends came from, for
// error messages.
type tokenSource struct {
	token string
	from  string // "--token", "PLUTO_TOKEN", a file name, or "" for none
}

// resolveToken applies the precedence above. flagSet reports whether
// --token was given; flagValue is its value, or PLUTO_TOKEN's when not
// given (the flag's default). servers are the hosts or host:port
// addresses the command talks to: the file is read only if all are
// loopback.
func resolveToken(flagSet bool, flagValue string, getenv func(string) string, servers ...string) (tokenSource, error) {
	switch {
	case flagSet:
		return tokenSource{token: flagValue, from: "--token"}, nil
	case flagValue != "":
		return tokenSource{token: flagValue, from: envToken}, nil
	}
	if len(servers) == 0 {
		return tokenSource{}, nil
	}
	for _, s := range servers {
		host := s
		if h, _, err := net.SplitHostPort(s); err == nil {
			host = h
		}
		if !loopbackHost(host) {
			return tokenSource{}, nil
		}
	}
	path := filepath.Join(defaultDataDir, adminTokenFile)
	if dir := getenv(envData); dir != "" {
		path = filepath.Join(dir, adminTokenFile)
	}
	tok, err := readTokenFile(path)
	if err != nil || tok == "" {
		return tokenSource{}, err
	}
	return tokenSource{token: tok, from: path}, nil
}

// loopbackHost reports whether host (a name or an IP, without port or
// brackets) is this machine.
func loopbackHost(host string) bool {
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// readTokenFile reads a token written by pluto dev; a missing file is no
// token.
func readTokenFile(path string) (string, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading the dev admin token: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFile))
	if err != nil {
		return "", fmt.Errorf("reading the dev admin token %s: %w", path, err)
	}
	tok := string(bytes.TrimSpace(b))
	if !auth.ValidSecret(tok) {
		return "", fmt.Errorf("%s does not hold a Pluto token (plt_…): delete it, or give --token or %s", path, envToken)
	}
	return tok, nil
}

// authHint adds to a 401 answer where the token came from, the first
// thing to check.
func (s tokenSource) authHint(err *apiError) *apiError {
	if err.Status != http.StatusUnauthorized {
		return err
	}
	e := *err
	if e.Message == "" {
		e.Message = http.StatusText(e.Status)
	}
	switch {
	case s.token == "":
		e.Message += " (no token given: set --token or " + envToken + ")"
	case s.from == "--token" || s.from == envToken:
		e.Message += " (the token from " + s.from + ")"
	default:
		e.Message += " (the token from " + s.from + ", written by pluto dev: is that server still the one running?)"
	}
	return &e
}
