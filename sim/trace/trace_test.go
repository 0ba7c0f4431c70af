package trace

import (
	"strings"
	"testing"
	"time"
)

func TestParseAzure(t *testing.T) {
	in := "TIMESTAMP,ContextTokens,GeneratedTokens\n" +
		"2023-11-16 18:15:46.6805900,374,44\n" +
		"2023-11-16 18:15:50.9951690,396,109\n" +
		"2023-11-16 18:15:46.7000000,10,1\n"
	reqs, err := ParseAzure(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 3 || reqs[0].At != 0 || reqs[1].At != 19410*time.Microsecond || reqs[1].PromptTokens != 10 ||
		reqs[2].At != 4314579*time.Microsecond || reqs[2].OutputTokens != 109 {
		t.Fatalf("got %+v", reqs)
	}
}

func TestParseAzureErrors(t *testing.T) {
	for name, in := range map[string]string{
		"empty":      "",
		"header":     "time,prompt,output\n1,2,3\n",
		"no rows":    "TIMESTAMP,ContextTokens,GeneratedTokens\n",
		"bad time":   "TIMESTAMP,ContextTokens,GeneratedTokens\nyesterday,1,2\n",
		"bad tokens": "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,0,2\n",
		"short row":  "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,1\n",
	} {
		if _, err := ParseAzure(strings.NewReader(in)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
