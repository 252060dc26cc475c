// Per-epoch reporting of a graph-transformer run: one console line per epoch, and in out_dir a
// JSON-lines log, a CSV and an SVG learning-curve plot, each rewritten atomically after every
// epoch (so a killed run leaves complete files).
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "models/gt/trainer.h"

namespace lapis {
namespace gt {

class TrainingReport {
 public:
  // out_dir "" writes no files. metric_name labels the metric columns ("MAE", ...).
  TrainingReport(std::string out_dir, std::string metric_name);
  // Continues a resumed run's history (files are rewritten with it on the next add()).
  void restore(const std::vector<EpochRecord>& history);
  // Records an epoch: prints its line to *log (a header first) and rewrites the files.
  void add(const EpochRecord& record, std::ostream* log);

 private:
  void write_files() const;
  std::string out_dir_, metric_;
  std::vector<EpochRecord> history_;
  bool header_printed_ = false;
};

// The SVG text of a learning-curve plot: train and validation loss per epoch (left) and the
// validation / test metric (right). Exposed for tests.
std::string learning_curve_svg(const std::vector<EpochRecord>& history,
                               const std::string& metric_name);

}  // namespace gt
}  // namespace lapis
