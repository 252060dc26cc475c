#include "apps/lapis/train_mlp.h"

#include <algorithm>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <map>
#include <numeric>

#include "apps/lapis/digits.h"
#include "core/check.h"
#include "core/random.h"
#include "core/tensor.h"
#include "kernels/loss.h"
#include "kernels/reduce.h"
#include "models/io/checkpoint.h"
#include "models/nn/layers.h"
#include "models/optim/optimizer.h"

namespace lapis {
namespace apps {
namespace {

constexpr const char* kOp = "train-mlp";

void check_options(const MlpTrainOptions& o) {
  LAPIS_CHECK(o.epochs >= 1, kOp, "--epochs must be at least 1, got ", o.epochs);
  LAPIS_CHECK(o.batch_size >= 1, kOp, "--batch-size must be at least 1, got ", o.batch_size);
  LAPIS_CHECK(o.lr > 0, kOp, "--lr must be positive, got ", o.lr);
  LAPIS_CHECK(o.hidden >= 1, kOp, "--hidden must be at least 1, got ", o.hidden);
  LAPIS_CHECK(o.dropout >= 0 && o.dropout < 1, kOp, "--dropout must be in [0, 1), got ",
              o.dropout);
  LAPIS_CHECK(o.weight_decay >= 0, kOp, "--weight-decay must be >= 0, got ", o.weight_decay);
  if (o.device.is_cuda()) {
    LAPIS_CHECK(built_with_cuda(), kOp, "--device ", o.device.to_string(),
                " needs CUDA, but this lapis was built without CUDA (rebuild with "
                "-DLAPIS_WITH_CUDA=ON)");
    const int count = cuda_device_count();
    LAPIS_CHECK(count > 0, kOp, "--device ", o.device.to_string(),
                ": no CUDA device is available on this machine");
    LAPIS_CHECK(o.device.index < count, kOp, "--device ", o.device.to_string(),
                ": only ", count, " CUDA device(s) available");
  }
}

// Rows `order[first .. first + count)` of x [N, 64] and y [N] (both on the CPU), copied to
// `device` as one batch.
void make_batch(const Tensor& x, const Tensor& y, const std::vector<int64_t>& order,
                int64_t first, int64_t count, Device device, Tensor* xb, Tensor* yb) {
  const int64_t c = x.size(1);
  const float* xs = x.data<float>();
  const int64_t* ys = y.data<int64_t>();
  std::vector<float> bx(static_cast<size_t>(count * c));
  std::vector<int64_t> by(static_cast<size_t>(count));
  for (int64_t r = 0; r < count; ++r) {
    const int64_t src = order[first + r];
    std::copy_n(xs + src * c, c, bx.begin() + r * c);
    by[r] = ys[src];
  }
  *xb = Tensor::from_vector(bx, {count, c}).to(device);
  *yb = Tensor::from_vector(by, {count}).to(device);
}

// Number of rows where argmax(logits) equals the label; labels on the host.
int64_t count_correct(const Tensor& logits, const int64_t* labels) {
  Tensor pred = Tensor::empty({logits.size(0)}, Dtype::I64, logits.device());
  argmax_rows(pred, logits);
  const std::vector<int64_t> p = pred.to_vector<int64_t>();
  int64_t correct = 0;
  for (size_t i = 0; i < p.size(); ++i) correct += p[i] == labels[i] ? 1 : 0;
  return correct;
}

std::string format_line(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string format_line(const char* fmt, ...) {
  char buf[256];
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(buf, sizeof(buf), fmt, args);
  va_end(args);
  return buf;
}

}  // namespace

MlpTrainResult train_mlp(const MlpTrainOptions& options, std::ostream* log) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  check_options(options);
  const Device device = options.device;

  const DigitsSplit data = load_digits(options.data_path);
  const int64_t n_train = data.train_x.size(0);
  const int64_t n_test = data.test_x.size(0);

  // Everything random comes from one generator: initialisation first, then the per-epoch batch
  // orders (the MLP draws its dropout seed from it too). Models start on the CPU, so the
  // initial weights are the same whatever the device.
  Generator gen(options.seed);
  nn::MLP model({kDigitsFeatures, options.hidden, options.hidden, kDigitsClasses},
                Activation::ReLU, options.dropout, gen);
  model.to(device);
  optim::AdamW opt(model.parameters(), options.lr, options.weight_decay);

  MlpTrainResult result;
  result.num_parameters = model.num_parameters();
  if (log) {
    *log << "train-mlp: digits " << n_train << " train / " << n_test << " test; MLP "
         << kDigitsFeatures << "-" << options.hidden << "-" << options.hidden << "-"
         << kDigitsClasses << " ReLU, " << result.num_parameters << " parameters\n";
    *log << "           AdamW lr " << options.lr << ", weight decay " << options.weight_decay
         << ", batch " << options.batch_size << ", dropout " << options.dropout << "; device "
         << device.to_string() << ", seed " << options.seed << "\n";
    *log << format_line("%5s  %10s  %9s  %8s  %9s  %7s\n", "epoch", "train_loss", "train_acc",
                        "test_acc", "lr", "time_s");
  }

  const Tensor test_x = data.test_x.to(device);
  const int64_t* test_labels = data.test_y.data<int64_t>();
  const int64_t* train_labels = data.train_y.data<int64_t>();
  std::vector<int64_t> order(static_cast<size_t>(n_train));
  std::iota(order.begin(), order.end(), 0);

  for (int epoch = 1; epoch <= options.epochs; ++epoch) {
    const auto epoch_start = Clock::now();
    // Fresh Fisher-Yates shuffle of the training rows each epoch.
    for (int64_t i = n_train - 1; i > 0; --i) {
      const int64_t j = std::min<int64_t>(i, static_cast<int64_t>(
                                                 gen.uniform() * static_cast<float>(i + 1)));
      std::swap(order[i], order[j]);
    }

    model.train();
    double loss_sum = 0.0;  // sum over batches of batch mean loss * batch rows
    int64_t correct = 0;
    for (int64_t first = 0; first < n_train; first += options.batch_size) {
      const int64_t rows = std::min(options.batch_size, n_train - first);
      Tensor xb, yb;
      make_batch(data.train_x, data.train_y, order, first, rows, device, &xb, &yb);

      nn::MLPCtx ctx;
      const Tensor logits = model.forward(xb, ctx);
      Tensor loss = Tensor::empty({1}, Dtype::F32, device);
      CrossEntropyCache cache;
      cache.probs = Tensor::empty({rows, kDigitsClasses}, Dtype::F32, device);
      cache.weight_sum = Tensor::empty({1}, Dtype::F32, device);
      cross_entropy_forward(loss, cache, logits, yb, Tensor());

      Tensor dlogits = Tensor::empty({rows, kDigitsClasses}, Dtype::F32, device);
      cross_entropy_backward(dlogits, 1.0, cache, yb, Tensor());
      opt.zero_grad();
      model.backward(dlogits, ctx);
      opt.step();

      loss_sum += loss.item() * static_cast<double>(rows);
      std::vector<int64_t> batch_labels(static_cast<size_t>(rows));
      for (int64_t r = 0; r < rows; ++r) batch_labels[r] = train_labels[order[first + r]];
      correct += count_correct(logits, batch_labels.data());
    }
    const double train_loss = loss_sum / static_cast<double>(n_train);
    const double train_acc = static_cast<double>(correct) / static_cast<double>(n_train);

    model.eval();
    nn::MLPCtx eval_ctx;
    const Tensor test_logits = model.forward(test_x, eval_ctx);
    const double test_acc =
        static_cast<double>(count_correct(test_logits, test_labels)) / static_cast<double>(n_test);

    const double epoch_s = std::chrono::duration<double>(Clock::now() - epoch_start).count();
    result.train_loss.push_back(train_loss);
    result.train_acc.push_back(train_acc);
    result.test_acc.push_back(test_acc);
    if (log) {
      *log << format_line("%5d  %10.6f  %9.4f  %8.4f  %9.2e  %7.3f\n", epoch, train_loss,
                          train_acc, test_acc, opt.lr(), epoch_s);
      log->flush();
    }
  }

  if (!options.checkpoint_path.empty()) {
    const std::map<std::string, std::string> metadata = {
        {"command", "train-mlp"},
        {"epochs", std::to_string(options.epochs)},
        {"hidden", std::to_string(options.hidden)},
        {"seed", std::to_string(options.seed)},
        {"test_acc", format_line("%.6f", result.test_acc.back())},
    };
    io::save_checkpoint(options.checkpoint_path, model, &opt, metadata);
    if (log) *log << "saved checkpoint " << options.checkpoint_path << "\n";
  }
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return result;
}

}  // namespace apps
}  // namespace lapis
