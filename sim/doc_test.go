package sim

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// TestEveryReportFieldDocumented: every JSON field of the report has its
// row in docs/sim.md.
func TestEveryReportFieldDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/sim.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []any{Report{}, KeyLoad{}, ScenarioEvent{}} {
		ty := reflect.TypeOf(v)
		for i := range ty.NumField() {
			name, _, _ := strings.Cut(ty.Field(i).Tag.Get("json"), ",")
			if name == "" || name == "-" {
				continue
			}
			if !strings.Contains(string(doc), "`"+name+"`") && !strings.Contains(string(doc), "."+name+"`") && !strings.Contains(string(doc), "`"+name+",") {
				t.Errorf("%s.%s (json %q) is not in docs/sim.md", ty.Name(), ty.Field(i).Name, name)
			}
		}
	}
}
