// Training an MLP classifier on the embedded digits data: the `lapis train-mlp` command's loop,
// as a library function so tests can run it and compare results.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "core/device.h"

namespace lapis {
namespace apps {

struct MlpTrainOptions {
  int epochs = 30;
  int64_t batch_size = 64;
  double lr = 1e-3;
  int64_t hidden = 64;          // dims 64 -> hidden -> hidden -> 10, ReLU
  double dropout = 0.0;         // after each hidden activation when > 0
  double weight_decay = 0.01;   // AdamW, decoupled
  Device device = Device::cpu();
  uint64_t seed = 0;            // model initialisation, batch order and dropout masks
  std::string data_path;        // "" = the embedded data/digits/digits.csv
  std::string checkpoint_path;  // "" = no checkpoint; else saved after the last epoch
};

// One entry per epoch.
struct MlpTrainResult {
  std::vector<double> train_loss;  // mean cross-entropy over the epoch's training batches
  std::vector<double> train_acc;   // accuracy of those (training-mode) forwards
  std::vector<double> test_acc;    // eval-mode accuracy on the 360 test images after the epoch
  double seconds = 0.0;            // wall time of the whole run
  int64_t num_parameters = 0;
};

// Trains from scratch; writes a header line and one line per epoch to *log when log is not null
// (epoch, train loss, train acc, test acc, lr, time). Throws lapis::Error on bad options (naming
// the option) or when the device cannot be used.
MlpTrainResult train_mlp(const MlpTrainOptions& options, std::ostream* log);

}  // namespace apps
}  // namespace lapis
