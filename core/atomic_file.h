// Atomic file replacement, the one implementation every writer of checkpoints, caches, logs and
// point clouds uses: the data goes to a temporary file next to the target (same file system), is
// flushed to disk, then renamed over the target. A reader never sees a half-written file, and a
// crash leaves either the old file or the new one. On failure the temporary file is removed and
// a lapis::Error names `op`, the file and the system error.
#pragma once

#include <functional>
#include <string>

namespace lapis {

// Replaces `path` with exactly `bytes`.
void write_file_atomic(const std::string& path, const std::string& bytes, const std::string& op);

// Replaces `path` with whatever `write` puts into the file it is given (a temporary path that
// does not exist yet; `write` creates, fills and closes it, and throws on failure). Use this when
// the data is streamed (large tensors) or written by another library (PCL).
void replace_file_atomic(const std::string& path,
                         const std::function<void(const std::string& tmp_path)>& write,
                         const std::string& op);

}  // namespace lapis
