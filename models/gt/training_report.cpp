#include "models/gt/training_report.h"


#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iomanip>
#include <sstream>

#include "core/atomic_file.h"
#include "core/check.h"

namespace lapis {
namespace gt {

TrainingReport::TrainingReport(std::string out_dir, std::string metric_name)
    : out_dir_(std::move(out_dir)), metric_(std::move(metric_name)) {}

void TrainingReport::restore(const std::vector<EpochRecord>& history) { history_ = history; }

void TrainingReport::add(const EpochRecord& r, std::ostream* log) {
  history_.push_back(r);
  if (log) {
    if (!header_printed_) {
      *log << "epoch  train_loss    val_loss  val_" << metric_ << "  test_" << metric_
           << "        lr   train_s   epoch_s" << std::endl;
      header_printed_ = true;
    }
    char line[256];
    std::snprintf(line, sizeof line, "%5lld  %10.5f  %10.5f  %*.4f  %*.4f  %8.2e  %8.2f  %8.2f",
                  static_cast<long long>(r.epoch), r.train_loss, r.val_loss,
                  static_cast<int>(4 + metric_.size()), r.val_metric,
                  static_cast<int>(5 + metric_.size()), r.test_metric, r.lr, r.train_seconds,
                  r.seconds);
    *log << line << std::endl;
  }
  if (!out_dir_.empty()) write_files();
}

void TrainingReport::write_files() const {
  std::ostringstream jsonl, csv;
  jsonl << std::setprecision(10);
  csv << std::setprecision(10);
  csv << "epoch,train_loss,val_loss,val_metric,test_loss,test_metric,lr,train_seconds,seconds\n";
  for (const EpochRecord& r : history_) {
    jsonl << "{\"epoch\": " << r.epoch << ", \"train_loss\": " << r.train_loss
          << ", \"val_loss\": " << r.val_loss << ", \"val_metric\": " << r.val_metric
          << ", \"test_loss\": " << r.test_loss << ", \"test_metric\": " << r.test_metric
          << ", \"metric\": \"" << metric_ << "\", \"lr\": " << r.lr
          << ", \"train_seconds\": " << r.train_seconds << ", \"seconds\": " << r.seconds
          << "}\n";
    csv << r.epoch << ',' << r.train_loss << ',' << r.val_loss << ',' << r.val_metric << ','
        << r.test_loss << ',' << r.test_metric << ',' << r.lr << ',' << r.train_seconds << ','
        << r.seconds << '\n';
  }
  const std::filesystem::path dir = out_dir_;
  write_file_atomic((dir / "log.jsonl").string(), jsonl.str(), "TrainingReport");
  write_file_atomic((dir / "log.csv").string(), csv.str(), "TrainingReport");
  write_file_atomic((dir / "curves.svg").string(), learning_curve_svg(history_, metric_),
                    "TrainingReport");
}

namespace {

// One panel: series of (epoch, value) lines in a box at (x0, y0) of size w x h.
void panel(std::ostringstream& svg, double x0, double y0, double w, double h,
           const std::string& title, const std::vector<EpochRecord>& hist,
           const std::vector<std::pair<std::string, double EpochRecord::*>>& series,
           const std::vector<std::string>& colors) {
  double lo = INFINITY, hi = -INFINITY;
  for (const auto& s : series)
    for (const EpochRecord& r : hist) {
      const double v = r.*(s.second);
      if (std::isfinite(v)) {
        lo = std::min(lo, v);
        hi = std::max(hi, v);
      }
    }
  if (!std::isfinite(lo)) lo = 0, hi = 1;
  if (hi - lo < 1e-12) hi = lo + 1.0;
  const double e0 = hist.empty() ? 1 : static_cast<double>(hist.front().epoch);
  const double e1 = hist.empty() ? 2 : std::max(e0 + 1, static_cast<double>(hist.back().epoch));
  auto X = [&](double e) { return x0 + (e - e0) / (e1 - e0) * w; };
  auto Y = [&](double v) { return y0 + h - (v - lo) / (hi - lo) * h; };
  svg << "<rect x='" << x0 << "' y='" << y0 << "' width='" << w << "' height='" << h
      << "' fill='none' stroke='#888'/>\n";
  svg << "<text x='" << x0 << "' y='" << y0 - 8 << "' font-size='13'>" << title << "</text>\n";
  svg << "<text x='" << x0 - 6 << "' y='" << y0 + 10 << "' font-size='10' text-anchor='end'>"
      << std::setprecision(4) << hi << "</text>\n";
  svg << "<text x='" << x0 - 6 << "' y='" << y0 + h << "' font-size='10' text-anchor='end'>"
      << lo << "</text>\n";
  svg << "<text x='" << x0 << "' y='" << y0 + h + 14 << "' font-size='10'>epoch " << e0
      << "</text>\n";
  svg << "<text x='" << x0 + w << "' y='" << y0 + h + 14
      << "' font-size='10' text-anchor='end'>" << e1 << "</text>\n";
  for (size_t s = 0; s < series.size(); ++s) {
    svg << "<polyline fill='none' stroke='" << colors[s] << "' stroke-width='1.5' points='";
    for (const EpochRecord& r : hist) {
      const double v = r.*(series[s].second);
      if (std::isfinite(v)) svg << X(static_cast<double>(r.epoch)) << ',' << Y(v) << ' ';
    }
    svg << "'/>\n";
    svg << "<text x='" << x0 + w - 4 << "' y='" << y0 + 16 + 14 * static_cast<double>(s)
        << "' font-size='11' text-anchor='end' fill='" << colors[s] << "'>" << series[s].first
        << "</text>\n";
  }
}

}  // namespace

std::string learning_curve_svg(const std::vector<EpochRecord>& history,
                               const std::string& metric_name) {
  std::ostringstream svg;
  svg << std::fixed << std::setprecision(2);
  svg << "<svg xmlns='http://www.w3.org/2000/svg' width='900' height='340' "
         "font-family='sans-serif'>\n<rect width='900' height='340' fill='white'/>\n";
  panel(svg, 60, 40, 360, 250, "loss", history,
        {{"train", &EpochRecord::train_loss}, {"val", &EpochRecord::val_loss}},
        {"#1f77b4", "#d62728"});
  panel(svg, 510, 40, 360, 250, metric_name, history,
        {{"val", &EpochRecord::val_metric}, {"test", &EpochRecord::test_metric}},
        {"#d62728", "#2ca02c"});
  svg << "</svg>\n";
  return svg.str();
}

}  // namespace gt
}  // namespace lapis
