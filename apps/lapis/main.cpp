// The `lapis` command: thin subcommands over the library.
//
// Exit codes: 0 success (and --help), 1 runtime error, 2 usage error. Every error is ONE line on
// stderr, "lapis: error: ...", so scripts and logs stay readable.
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "apps/lapis/commands.h"
#include "core/check.h"

#ifndef LAPIS_VERSION_STRING
#define LAPIS_VERSION_STRING "unknown"
#endif

namespace lapis {
namespace apps {

const char* lapis_version() { return LAPIS_VERSION_STRING; }

namespace {

// Joins a multi-line message into one line.
std::string one_line(std::string text) {
  for (char& ch : text) {
    if (ch == '\n' || ch == '\r') ch = ' ';
  }
  while (!text.empty() && text.back() == ' ') text.pop_back();
  return text;
}

int print_error(const std::string& message, int code) {
  std::cerr << "lapis: error: " << one_line(message) << std::endl;
  return code;
}

}  // namespace
}  // namespace apps
}  // namespace lapis

int main(int argc, char** argv) {
  using namespace lapis::apps;
  CLI::App app{"Lapis: graph transformers and geometric learning in C++/CUDA", "lapis"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("lapis ") + lapis_version());
  app.footer("Run 'lapis <command> --help' for a command's options.");

  std::vector<Subcommand> commands = {add_info_command(app), add_train_mlp_command(app),
                                      add_dataset_command(app), add_train_graph_command(app),
                                      add_eval_graph_command(app), add_normals_command(app),
                                      add_normals_eval_command(app),
                                      add_make_normal_benchmark_command(app)};

  // CLI11 would report an unknown command word as "a subcommand is required"; name it instead.
  if (argc >= 2 && argv[1][0] != '-') {
    std::string names;
    bool known = false;
    for (const Subcommand& command : commands) {
      known = known || command.app->get_name() == argv[1];
      names += (names.empty() ? "" : ", ") + command.app->get_name();
    }
    if (!known) {
      return print_error(std::string("unknown command '") + argv[1] + "' (commands: " + names +
                             "; see 'lapis --help')",
                         2);
    }
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version arrive as "errors" with exit code 0: print them normally.
    if (e.get_exit_code() == 0) return app.exit(e);
    std::string help = "lapis --help";
    for (const Subcommand& command : commands) {
      if (command.app->parsed()) help = "lapis " + command.app->get_name() + " --help";
    }
    return print_error(std::string(e.what()) + " (see '" + help + "')", 2);
  }

  try {
    for (const Subcommand& command : commands) {
      if (command.app->parsed()) return command.run();
    }
    return print_error("no command given (see 'lapis --help')", 2);
  } catch (const lapis::Error& e) {
    return print_error(e.what(), 1);
  } catch (const std::exception& e) {
    return print_error(std::string("unexpected failure: ") + e.what(), 1);
  }
}
