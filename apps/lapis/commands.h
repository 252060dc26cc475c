// Subcommands of the `lapis` program. Each add_*_command registers its options on the parent
// CLI11 app and returns the run function main() calls when that subcommand was given.
// Run functions return the exit code and may throw (main turns exceptions into one-line errors).
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

namespace lapis {
namespace apps {

struct Subcommand {
  CLI::App* app;
  std::function<int()> run;
};

Subcommand add_info_command(CLI::App& parent);       // info_command.cpp
Subcommand add_train_mlp_command(CLI::App& parent);  // train_mlp_command.cpp
Subcommand add_dataset_command(CLI::App& parent);    // dataset_command.cpp
Subcommand add_train_graph_command(CLI::App& parent);  // train_graph_command.cpp
Subcommand add_eval_graph_command(CLI::App& parent);   // train_graph_command.cpp
Subcommand add_normals_command(CLI::App& parent);    // normals_command.cpp
Subcommand add_normals_eval_command(CLI::App& parent);  // normals_eval_command.cpp
Subcommand add_make_normal_benchmark_command(CLI::App& parent);  // make_normal_benchmark_command.cpp

// "0.1.0": the project version from CMake.
const char* lapis_version();

}  // namespace apps
}  // namespace lapis
