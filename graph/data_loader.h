// GraphDataLoader: mini-batches of GraphSamples, collated on a background thread.
//
//   GraphDataLoader loader(samples, {/*batch_size=*/128, /*shuffle=*/true, /*seed=*/1});
//   for (int epoch = 0; epoch < 100; ++epoch) {
//     loader.start_epoch(epoch);
//     GraphBatch batch;
//     while (loader.next(batch)) { ... batch.graph, batch.y, batch.node_extras ... }
//   }
//
// The order of epoch e is a pure function of (seed, e) (Fisher-Yates with counter-based random
// numbers), so runs repeat and resuming at epoch e gives the same order. A worker thread collates
// the next batches while the caller trains on the current one; at most `prefetch` (2) finished
// batches wait in a bounded queue. Collation happens on the CPU; when options.device is CUDA,
// next() moves the batch there on the calling thread (so every CUDA call stays on the caller's
// stream). An exception thrown while collating (e.g. samples whose features disagree) is
// rethrown by the next() that would have returned that batch, naming the batch.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "core/device.h"
#include "graph/batch.h"
#include "graph/sample.h"

namespace lapis {
namespace graph {

struct DataLoaderOptions {
  int64_t batch_size = 32;
  bool shuffle = true;
  uint64_t seed = 0;
  bool drop_last = false;     // drop the last batch when it has fewer than batch_size graphs
  bool background = true;     // false: collate synchronously inside next() (debugging)
  int64_t prefetch = 2;       // bounded queue depth of finished batches (>= 1)
  Device device = Device::cpu();  // where next() puts the batch
};

class GraphDataLoader {
 public:
  // Non-owning: `samples` must outlive the loader. Throws lapis::Error on an empty dataset or
  // batch_size < 1.
  GraphDataLoader(const std::vector<GraphSample>& samples, const DataLoaderOptions& options);
  // Owning variant (shares the vector).
  GraphDataLoader(std::shared_ptr<const std::vector<GraphSample>> samples,
                  const DataLoaderOptions& options);
  ~GraphDataLoader();
  GraphDataLoader(const GraphDataLoader&) = delete;
  GraphDataLoader& operator=(const GraphDataLoader&) = delete;

  int64_t num_samples() const;
  int64_t num_batches() const;  // per epoch, honouring drop_last
  const DataLoaderOptions& options() const { return options_; }

  // The sample order of epoch `epoch` (identity when shuffle is false).
  std::vector<int64_t> epoch_order(int64_t epoch) const;

  // Starts epoch `epoch` (abandoning any unfinished one) and, in background mode, the worker.
  void start_epoch(int64_t epoch);
  // Starts the epoch after the last one started (0 first).
  void start_epoch();
  // The next batch of the current epoch into `out`; false (out untouched) when the epoch is over.
  // Throws if no epoch was started, or rethrows a collation error.
  bool next(GraphBatch& out);

 private:
  struct Item {
    GraphBatch batch;
    std::exception_ptr error;
  };
  void stop_worker();
  void worker_loop();
  GraphBatch collate(int64_t batch_number) const;

  std::shared_ptr<const std::vector<GraphSample>> owned_;
  const std::vector<GraphSample>* samples_ = nullptr;
  DataLoaderOptions options_;

  int64_t epoch_ = -1;
  std::vector<int64_t> order_;
  int64_t next_batch_ = 0;  // the next batch next() returns (synchronous mode and bookkeeping)

  std::thread worker_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Item> queue_;
  bool stop_ = false;
};

}  // namespace graph
}  // namespace lapis
