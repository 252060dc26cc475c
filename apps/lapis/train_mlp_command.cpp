// `lapis train-mlp`: trains a small MLP on the embedded UCI digits data (see train_mlp.h).
#include <cstdio>
#include <iostream>
#include <memory>

#include "apps/lapis/commands.h"
#include "apps/lapis/train_mlp.h"
#include "core/check.h"
#include "core/device.h"

namespace lapis {
namespace apps {
namespace {

struct TrainMlpArgs {
  MlpTrainOptions options;
  std::string device = "cpu";
  bool quiet = false;
};

int run_train_mlp(TrainMlpArgs& args) {
  args.options.device = Device::parse(args.device);
  const MlpTrainResult result = train_mlp(args.options, args.quiet ? nullptr : &std::cout);
  std::printf("final: train_loss %.6f  test_acc %.4f  (%d epochs, %.2f s)\n",
              result.train_loss.back(), result.test_acc.back(), args.options.epochs,
              result.seconds);
  return 0;
}

}  // namespace

Subcommand add_train_mlp_command(CLI::App& parent) {
  auto args = std::make_shared<TrainMlpArgs>();
  MlpTrainOptions& o = args->options;
  CLI::App* app = parent.add_subcommand(
      "train-mlp",
      "Train an MLP (64 -> hidden -> hidden -> 10, ReLU, AdamW) on the embedded UCI handwritten "
      "digits (1437 train / 360 test images); prints loss and accuracy per epoch");
  app->add_option("--epochs", o.epochs, "Number of epochs")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  app->add_option("--batch-size", o.batch_size, "Rows per training batch")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  app->add_option("--lr", o.lr, "AdamW learning rate")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app->add_option("--hidden", o.hidden, "Width of the two hidden layers")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  app->add_option("--dropout", o.dropout, "Dropout probability after each hidden layer, [0, 1)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 0.999999));
  app->add_option("--weight-decay", o.weight_decay, "AdamW decoupled weight decay")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app->add_option("--device", args->device, "cpu, cuda or cuda:N")
      ->capture_default_str()
      ->check([](const std::string& text) -> std::string {
        try {
          Device::parse(text);
          return "";
        } catch (const Error&) {
          return "unknown device '" + text + "' (expected cpu, cuda or cuda:N)";
        }
      });
  app->add_option("--seed", o.seed, "Seed for initialisation, batch order and dropout")
      ->capture_default_str();
  app->add_option("--data", o.data_path,
                  "CSV file to use instead of the embedded digits (64 pixels 0..16, then the "
                  "label, per line)");
  app->add_option("--checkpoint", o.checkpoint_path,
                  "Save model and optimizer state here (safetensors) after the last epoch");
  app->add_flag("--quiet,-q", args->quiet, "Print only the final line");
  return {app, [args] { return run_train_mlp(*args); }};
}

}  // namespace apps
}  // namespace lapis
