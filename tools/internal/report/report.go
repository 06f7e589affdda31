// Package report holds check-deploy's result model and its text and JSON renderings.
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Status of one check.
type Status string

const (
	Pass Status = "PASS"
	Fail Status = "FAIL"
)

// Finding is one reason a check failed: the object, what is wrong, and how to fix it.
type Finding struct {
	Object  string `json:"object,omitempty"`
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"`
}

// Check is one line of the report.
type Check struct {
	ID       string    `json:"id"`    // stable identifier, e.g. "authz.call-graph"
	Scope    string    `json:"scope"` // "tenant-a", "mesh", "all"
	Title    string    `json:"title"`
	Status   Status    `json:"status"`
	Detail   string    `json:"detail,omitempty"` // what was proven, on success
	Findings []Finding `json:"findings,omitempty"`
	Notes    []string  `json:"notes,omitempty"` // e.g. suppressed analyzer messages and why
}

// Report is the whole result.
type Report struct {
	DeployDir string  `json:"deployDir"`
	Checks    []Check `json:"checks"`
	Passed    int     `json:"passed"`
	Failed    int     `json:"failed"`
	OK        bool    `json:"ok"`
}

// Add records a check; it fails when it has findings.
func (r *Report) Add(c Check) {
	if len(c.Findings) > 0 {
		c.Status = Fail
	} else if c.Status == "" {
		c.Status = Pass
	}
	r.Checks = append(r.Checks, c)
	r.tally()
}

func (r *Report) tally() {
	r.Passed, r.Failed = 0, 0
	for _, c := range r.Checks {
		if c.Status == Pass {
			r.Passed++
		} else {
			r.Failed++
		}
	}
	r.OK = r.Failed == 0 && len(r.Checks) > 0
}

// Find returns the checks with the given id (any scope).
func (r *Report) Find(id string) []Check {
	var out []Check
	for _, c := range r.Checks {
		if c.ID == id {
			out = append(out, c)
		}
	}
	return out
}

// Failures returns every failed check.
func (r *Report) Failures() []Check {
	var out []Check
	for _, c := range r.Checks {
		if c.Status != Pass {
			out = append(out, c)
		}
	}
	return out
}

// WriteText prints one line per check (✓/✗), and under each failure its findings and fixes.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "check-deploy: %s\n", r.DeployDir)
	for _, c := range r.Checks {
		mark := "✓ PASS"
		if c.Status != Pass {
			mark = "✗ FAIL"
		}
		line := fmt.Sprintf("%s  %-28s %-11s %s", mark, c.ID, "["+c.Scope+"]", c.Title)
		if c.Status == Pass && c.Detail != "" {
			line += " — " + c.Detail
		}
		b.WriteString(line + "\n")
		for _, f := range c.Findings {
			obj := ""
			if f.Object != "" {
				obj = f.Object + ": "
			}
			fmt.Fprintf(&b, "        - %s%s\n", obj, f.Message)
			if f.Fix != "" {
				fmt.Fprintf(&b, "          fix: %s\n", f.Fix)
			}
		}
		for _, n := range c.Notes {
			fmt.Fprintf(&b, "        note: %s\n", n)
		}
	}
	verdict := "OK"
	if !r.OK {
		verdict = "FAILED"
	}
	fmt.Fprintf(&b, "%d passed, %d failed: %s\n", r.Passed, r.Failed, verdict)
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(r)
}
