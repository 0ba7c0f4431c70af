// Package plot draws a simulation's time series as one PNG, with the standard library only: the arrival
// rate on top, then per policy the ready replicas, the queue and decode tokens/s per pod, on a shared time
// axis in minutes, so a reader sees at a glance when each policy scaled and what it cost in queueing.
package plot

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math"
	"time"

	"github.com/llm-d/llm-d/sim"
)

const (
	width      = 1400
	panelH     = 210
	left       = 110
	right      = 30
	top        = 90
	gap        = 40
	bottom     = 60
	scaleTitle = 3
	scaleLabel = 2
)

var (
	white = color.RGBA{255, 255, 255, 255}
	black = color.RGBA{20, 20, 20, 255}
	grid  = color.RGBA{225, 225, 225, 255}
	gray  = color.RGBA{110, 110, 110, 255}
	// palette is colour-blind safe (Okabe–Ito), in sim.Policies order.
	palette = []color.RGBA{{0, 114, 178, 255}, {213, 94, 0, 255}, {0, 158, 115, 255}, {204, 121, 167, 255}, {230, 159, 0, 255}}
)

type panel struct {
	title string
	value func(sim.Point) float64
	// shared panels draw only the first result's series (the arrivals are the same for every policy).
	shared bool
	step   bool
}

var panels = []panel{
	{title: "arrivals (requests/s)", value: func(p sim.Point) float64 { return p.ArrivalsPerSec }, shared: true},
	{title: "ready replicas (dotted: ready + starting)", value: func(p sim.Point) float64 { return float64(p.Ready) }, step: true},
	{title: "requests waiting (all pods and gateway)", value: func(p sim.Point) float64 { return float64(p.Waiting) }},
	{title: "decode tokens/s per ready pod", value: func(p sim.Point) float64 { return p.DecodeTPSPerPod }},
}

// PNG draws results' time series under title.
func PNG(w io.Writer, title string, results []sim.Result) error {
	height := top + len(panels)*(panelH+gap) + bottom
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	fill(img, 0, 0, width, height, white)
	text(img, left, 20, scaleTitle, black, title)
	// Legend.
	x := left
	for i, r := range results {
		c := palette[i%len(palette)]
		fill(img, x, 60, 24, 8, c)
		x += 32
		x += text(img, x, 56, scaleLabel, black, r.Policy) + 30
	}
	var end time.Duration
	for _, r := range results {
		if n := len(r.Series); n > 0 {
			end = max(end, r.Series[n-1].T)
		}
	}
	if end <= 0 {
		return fmt.Errorf("no time series to plot")
	}
	plotW := width - left - right
	for pi, pn := range panels {
		y0 := top + pi*(panelH+gap) + 20
		text(img, left, y0-18, scaleLabel, black, pn.title)
		ymax := 0.0
		for _, r := range results {
			for _, p := range r.Series {
				ymax = max(ymax, pn.value(p))
				if pi == 1 {
					ymax = max(ymax, float64(p.Ready+p.Starting))
				}
			}
			if pn.shared {
				break
			}
		}
		ymax = nice(ymax)
		px := func(t time.Duration) int { return left + int(float64(plotW)*t.Seconds()/end.Seconds()) }
		py := func(v float64) int { return y0 + panelH - int(float64(panelH)*v/ymax) }
		// Grid and y labels at 0, 1/2 and the top.
		for _, f := range []float64{0, 0.5, 1} {
			yy := py(f * ymax)
			fill(img, left, yy, plotW, 1, grid)
			lab := label(f * ymax)
			text(img, left-10-textWidth(lab, scaleLabel), yy-7, scaleLabel, gray, lab)
		}
		// x grid every 10 minutes (every minute on short runs such as the demo's).
		tick := 10 * time.Minute
		if end < 20*time.Minute {
			tick = time.Minute
		}
		for m := time.Duration(0); m <= end; m += tick {
			fill(img, px(m), y0, 1, panelH, grid)
			if pi == len(panels)-1 {
				lab := fmt.Sprintf("%d", int(m.Minutes()))
				text(img, px(m)-textWidth(lab, scaleLabel)/2, y0+panelH+10, scaleLabel, gray, lab)
			}
		}
		fill(img, left, y0, 1, panelH, black)
		fill(img, left, y0+panelH, plotW, 1, black)
		// Drawn last to first, so the first result (llmd) lies on top.
		for ri := len(results) - 1; ri >= 0; ri-- {
			r := results[ri]
			if pn.shared {
				r = results[0]
			}
			c := palette[ri%len(palette)]
			if pn.shared {
				c = gray
			}
			series(img, r.Series, px, py, pn.value, pn.step, c, false)
			if pi == 1 {
				series(img, r.Series, px, py, func(p sim.Point) float64 { return float64(p.Ready + p.Starting) }, true, c, true)
			}
			if pn.shared {
				break
			}
		}
	}
	lab := "time (minutes)"
	text(img, left+plotW/2-textWidth(lab, scaleLabel)/2, height-28, scaleLabel, black, lab)
	// Every pixel is one of a few colours: a paletted PNG of them is under two thirds of the size.
	pal := color.Palette{white, black, grid, gray}
	for _, c := range palette {
		pal = append(pal, c)
	}
	out := image.NewPaletted(img.Bounds(), pal)
	draw.Draw(out, out.Bounds(), img, image.Point{}, draw.Src)
	return (&png.Encoder{CompressionLevel: png.BestCompression}).Encode(w, out)
}

// series draws one line; step draws a staircase (replica counts change at instants), dotted skips pixels.
func series(img *image.RGBA, pts []sim.Point, px func(time.Duration) int, py func(float64) int,
	v func(sim.Point) float64, step bool, c color.RGBA, dotted bool) {
	for i := 1; i < len(pts); i++ {
		x0, y0 := px(pts[i-1].T), py(v(pts[i-1]))
		x1, y1 := px(pts[i].T), py(v(pts[i]))
		if step {
			line(img, x0, y0, x1, y0, c, dotted)
			line(img, x1, y0, x1, y1, c, dotted)
		} else {
			line(img, x0, y0, x1, y1, c, dotted)
		}
	}
}

// line draws a 2-pixel line from (x0, y0) to (x1, y1).
func line(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA, dotted bool) {
	n := max(abs(x1-x0), abs(y1-y0), 1)
	for i := 0; i <= n; i++ {
		if dotted && (i/3)%2 == 1 {
			continue
		}
		x := x0 + (x1-x0)*i/n
		y := y0 + (y1-y0)*i/n
		img.SetRGBA(x, y, c)
		img.SetRGBA(x+1, y, c)
		img.SetRGBA(x, y+1, c)
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// nice rounds v up to 1, 2 or 5 times a power of ten, so that the axis labels are round.
func nice(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func label(v float64) string {
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}
