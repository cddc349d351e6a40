package dhtkit

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDocsStayInTheRepository: every link of README.md and docs/*.md
// points at a file of the repository (issue 14: the README linked to
// ../shared/, dead for anyone who clones), the README installs from a
// clone (the module is not published: no `go install …@latest`), and its
// first two lines are the demo and the test command.
func TestDocsStayInTheRepository(t *testing.T) {
	docs, _ := filepath.Glob("docs/*.md")
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	for _, doc := range append([]string{"README.md"}, docs...) {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(string(b), -1) {
			target, _, _ := strings.Cut(m[1], "#")
			if target == "" {
				continue // a link within the page
			}
			if strings.Contains(target, "://") || strings.HasPrefix(target, "//") {
				t.Errorf("%s links outside the repository: %s", doc, m[1])
				continue
			}
			path := filepath.Join(filepath.Dir(doc), target)
			if rel, err := filepath.Rel(".", path); err != nil || strings.HasPrefix(rel, "..") {
				t.Errorf("%s links outside the repository: %s", doc, m[1])
				continue
			}
			if _, err := os.Stat(path); err != nil {
				t.Errorf("%s links to %s, which does not exist", doc, m[1])
			}
		}
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(readme), "@latest") {
		t.Error("README.md says `go install …@latest`, which fails: the module is not published")
	}
	_, block, _ := strings.Cut(string(readme), "```sh\n")
	lines := strings.SplitN(block, "\n", 3)
	if len(lines) < 3 || !strings.HasPrefix(lines[0], "go run ./cmd/dhtkit demo") ||
		!strings.HasPrefix(lines[1], "go test -race -timeout 30m ./... && (cd interop && go test ./...)") {
		t.Errorf("README.md's first two lines are not the demo and the test command: %q", lines[:min(2, len(lines))])
	}
}
