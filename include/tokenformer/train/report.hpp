// tokenformer/train/report.hpp: what a training run shows and writes: a one-line progress display,
// a CSV of the loss curve and an SVG plot of one or more curves.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <unistd.h>

#include "tokenformer/io/atomic_file.hpp"

namespace tokenformer {

/// Progress display: rewrites one line in place on a terminal, prints plain lines otherwise.
class ProgressLine {
 public:
  /// Writes to `out`, rewriting in place when it is a terminal.
  explicit ProgressLine(std::FILE* out = stdout) : out_(out), terminal_(::isatty(::fileno(out)) != 0) {}
  bool terminal() const { return terminal_; }  ///< whether `out` is a terminal
  /// Shows `text`; `keep` ends the line (on a terminal) so it stays visible above the next one.
  void show(const std::string& text, bool keep = false) {
    if (terminal_) {
      std::fprintf(out_, "\r\033[K%s%s", text.c_str(), keep ? "\n" : "");
    } else if (keep || ++calls_ % 10 == 1) {
      std::fprintf(out_, "%s\n", text.c_str());
    }
    std::fflush(out_);
  }
  /// Ends the current line on a terminal; call once after the last show().
  void finish() {
    if (terminal_) std::fprintf(out_, "\n");
    std::fflush(out_);
  }

 private:
  std::FILE* out_;
  bool terminal_;
  long calls_ = 0;
};

/// "1h02m", "4m05s" or "12s".
inline std::string format_duration(double seconds) {
  if (!(seconds >= 0) || !std::isfinite(seconds)) return "?";
  const long s = static_cast<long>(seconds + 0.5);
  char buffer[32];
  if (s >= 3600)
    std::snprintf(buffer, sizeof buffer, "%ldh%02ldm", s / 3600, (s / 60) % 60);
  else if (s >= 60)
    std::snprintf(buffer, sizeof buffer, "%ldm%02lds", s / 60, s % 60);
  else
    std::snprintf(buffer, sizeof buffer, "%lds", s);
  return buffer;
}

/// One curve of a plot.
struct PlotSeries {
  std::string name;  ///< the legend's label
  ///@{
  /// The points' coordinates, one entry per point.
  std::vector<double> x, y;
  ///@}
  std::string color = "#1f77b4";  ///< an SVG color
  bool dashed = false;            ///< a dashed line instead of a solid one
};

/// A vertical marker line with a label.
struct PlotMarker {
  double x = 0;       ///< where the line stands on the x axis
  std::string label;  ///< the text beside it
};

/// Writes a self-contained SVG line plot of `series` (atomically). With a finite `y_max`, the y axis
/// ends there and the curves are clipped to the frame (to show where runs differ, not their start).
inline void write_svg_plot(const std::string& path, const std::vector<PlotSeries>& series, const std::string& title,
                           const std::string& x_label, const std::string& y_label,
                           const std::vector<PlotMarker>& markers = {}, double y_max = NAN) {
  // The right margin leaves room for half of the last x tick label ("1.13e+13"), centred on the frame.
  const double width = 800, height = 500, left = 70, right = 40, top = 40, bottom = 60;
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (const auto& s : series)
    for (std::size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      x0 = std::min(x0, s.x[i]);
      x1 = std::max(x1, s.x[i]);
      y0 = std::min(y0, s.y[i]);
      y1 = std::max(y1, s.y[i]);
    }
  if (std::isfinite(y_max) && y_max > y0) y1 = std::min(y1, y_max);
  if (!(x1 > x0)) x1 = x0 + 1;
  if (!(y1 > y0)) y1 = y0 + 1;
  if (!std::isfinite(x0)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  const double pad = 0.05 * (y1 - y0);
  y0 -= pad;
  y1 += pad;
  const auto px = [&](double x) { return left + (x - x0) / (x1 - x0) * (width - left - right); };
  const auto py = [&](double y) { return top + (y1 - y) / (y1 - y0) * (height - top - bottom); };
  const auto escape = [](const std::string& s) {
    std::string out;
    for (char c : s) {
      if (c == '<')
        out += "&lt;";
      else if (c == '>')
        out += "&gt;";
      else if (c == '&')
        out += "&amp;";
      else
        out += c;
    }
    return out;
  };
  std::string svg;
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" font-family=\"sans-serif\" "
                "font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
                width, height);
  svg += buf;
  std::snprintf(buf, sizeof buf, "<text x=\"%.0f\" y=\"24\" font-size=\"16\" text-anchor=\"middle\">", width / 2);
  svg += buf + escape(title) + "</text>\n";
  for (int i = 0; i <= 5; ++i) {  // grid and tick labels
    const double y = y0 + (y1 - y0) * i / 5.0, x = x0 + (x1 - x0) * i / 5.0;
    std::snprintf(buf, sizeof buf,
                  "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n"
                  "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.3g</text>\n"
                  "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n"
                  "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.3g</text>\n",
                  left, py(y), width - right, py(y), left - 6, py(y) + 4, y, px(x), top, px(x), height - bottom, px(x),
                  height - bottom + 16, x);
    svg += buf;
  }
  std::snprintf(buf, sizeof buf,
                "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#444\"/>\n"
                "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">",
                left, top, width - left - right, height - top - bottom, (left + width - right) / 2, height - 18);
  svg += buf + escape(x_label) + "</text>\n";
  std::snprintf(buf, sizeof buf, "<text x=\"16\" y=\"%.1f\" text-anchor=\"middle\" transform=\"rotate(-90 16 %.1f)\">",
                (top + height - bottom) / 2, (top + height - bottom) / 2);
  svg += buf + escape(y_label) + "</text>\n";
  int marker_index = 0;
  for (const auto& m : markers) {  // labels stacked downwards so that near markers stay readable
    std::snprintf(buf, sizeof buf,
                  "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#888\" stroke-dasharray=\"4 3\"/>\n"
                  "<text x=\"%.1f\" y=\"%.1f\" fill=\"#555\">",
                  px(m.x), top, px(m.x), height - bottom, px(m.x) + 4, height - bottom - 8 - 16.0 * marker_index++);
    svg += buf + escape(m.label) + "</text>\n";
  }
  std::snprintf(buf, sizeof buf,
                "<clipPath id=\"frame\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/></clipPath>\n",
                left, top, width - left - right, height - top - bottom);
  svg += buf;
  int index = 0;
  for (const auto& s : series) {
    std::string points;
    for (std::size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      std::snprintf(buf, sizeof buf, "%.1f,%.1f ", px(s.x[i]), py(s.y[i]));
      points += buf;
    }
    std::snprintf(buf, sizeof buf,
                  "<polyline clip-path=\"url(#frame)\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"",
                  s.color.c_str(), s.dashed ? " stroke-dasharray=\"6 4\"" : "");
    svg += buf + points + "\"/>\n";
    std::snprintf(buf, sizeof buf,
                  "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"/>\n"
                  "<text x=\"%.1f\" y=\"%.1f\">",
                  width - right - 220, top + 16 + 18.0 * index, width - right - 195, top + 16 + 18.0 * index,
                  s.color.c_str(), width - right - 188, top + 20 + 18.0 * index);
    svg += buf + escape(s.name) + "</text>\n";
    ++index;
  }
  svg += "</svg>\n";
  io::write_file_atomically(path, [&](io::FileSink& sink) { sink.write(svg.data(), svg.size()); });
}

}  // namespace tokenformer
