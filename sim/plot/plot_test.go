package plot

import (
	"bytes"
	"image/png"
	"testing"
	"time"

	"github.com/llm-d/llm-d/sim"
)

func TestPNG(t *testing.T) {
	var pts []sim.Point
	for i := 1; i <= 40; i++ {
		pts = append(pts, sim.Point{T: time.Duration(i) * 15 * time.Second, ArrivalsPerSec: float64(i % 7), Ready: 1 + i/10, Waiting: i % 5, DecodeTPSPerPod: 100})
	}
	var buf bytes.Buffer
	if err := PNG(&buf, "test, 40 points", []sim.Result{{Policy: "llmd", Series: pts}, {Policy: "hpa-queue", Series: pts}}); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&buf)
	if err != nil || img.Bounds().Dx() != width {
		t.Fatalf("not a %d-wide PNG: %v", width, err)
	}
	if err := PNG(&buf, "empty", []sim.Result{{Policy: "llmd"}}); err == nil {
		t.Fatal("an empty series plotted")
	}
}

func TestNice(t *testing.T) {
	for in, want := range map[float64]float64{0: 1, 0.3: 0.5, 7: 10, 8.8: 10, 12: 20, 230: 500, 1000: 1000} {
		if got := nice(in); got != want {
			t.Errorf("nice(%v) = %v, want %v", in, got, want)
		}
	}
}
