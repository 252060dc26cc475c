// GraphDataLoader: seeded epoch orders and a bounded producer/consumer queue of batches.
#include "graph/data_loader.h"

#include <algorithm>
#include <utility>

#include "core/check.h"
#include "core/random.h"

namespace lapis {
namespace graph {

namespace {
void check_options(const std::vector<GraphSample>* samples, const DataLoaderOptions& o) {
  const char* op = "GraphDataLoader";
  LAPIS_CHECK(samples != nullptr && !samples->empty(), op, "the dataset is empty");
  LAPIS_CHECK(o.batch_size >= 1, op, "batch_size must be >= 1, got ", o.batch_size);
  LAPIS_CHECK(o.prefetch >= 1, op, "prefetch must be >= 1, got ", o.prefetch);
}
}  // namespace

GraphDataLoader::GraphDataLoader(const std::vector<GraphSample>& samples,
                                 const DataLoaderOptions& options)
    : samples_(&samples), options_(options) {
  check_options(samples_, options_);
}

GraphDataLoader::GraphDataLoader(std::shared_ptr<const std::vector<GraphSample>> samples,
                                 const DataLoaderOptions& options)
    : owned_(std::move(samples)), samples_(owned_.get()), options_(options) {
  check_options(samples_, options_);
}

GraphDataLoader::~GraphDataLoader() { stop_worker(); }

int64_t GraphDataLoader::num_samples() const { return static_cast<int64_t>(samples_->size()); }

int64_t GraphDataLoader::num_batches() const {
  const int64_t n = num_samples(), bs = options_.batch_size;
  return options_.drop_last ? n / bs : (n + bs - 1) / bs;
}

std::vector<int64_t> GraphDataLoader::epoch_order(int64_t epoch) const {
  const int64_t n = num_samples();
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  if (!options_.shuffle) return order;
  // Fisher-Yates with counter-based draws: a pure function of (seed, epoch), any platform.
  const uint64_t epoch_seed =
      mix64(options_.seed ^ mix64(static_cast<uint64_t>(epoch) + 0x632BE59BD9B4E019ull));
  for (int64_t i = n - 1; i > 0; --i) {
    const uint64_t j = random_bits(epoch_seed, static_cast<uint64_t>(i)) %
                       static_cast<uint64_t>(i + 1);
    std::swap(order[i], order[j]);
  }
  return order;
}

void GraphDataLoader::stop_worker() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
  std::lock_guard<std::mutex> lock(mutex_);
  queue_.clear();
  stop_ = false;
}

void GraphDataLoader::start_epoch() { start_epoch(epoch_ + 1); }

void GraphDataLoader::start_epoch(int64_t epoch) {
  stop_worker();
  epoch_ = epoch;
  order_ = epoch_order(epoch);
  next_batch_ = 0;
  if (options_.background && num_batches() > 0) {
    worker_ = std::thread([this] { worker_loop(); });
  }
}

GraphBatch GraphDataLoader::collate(int64_t batch_number) const {
  const int64_t bs = options_.batch_size;
  const int64_t begin = batch_number * bs;
  const int64_t end = std::min<int64_t>(begin + bs, static_cast<int64_t>(order_.size()));
  std::vector<const GraphSample*> items;
  std::vector<int64_t> index;
  for (int64_t i = begin; i < end; ++i) {
    index.push_back(order_[i]);
    items.push_back(&(*samples_)[static_cast<size_t>(order_[i])]);
  }
  GraphBatch batch;
  try {
    batch = batch_samples(items);
  } catch (const Error& e) {
    LAPIS_FAIL("GraphDataLoader", "collating batch ", batch_number, " of epoch ", epoch_,
               " (samples ", index.front(), " ...) failed: ", e.what());
  }
  batch.sample_index = std::move(index);
  return batch;
}

// One worker per epoch: start_epoch() joins the previous one (stop_worker) before starting it,
// so order_ and epoch_ are never written while a worker reads them.
void GraphDataLoader::worker_loop() {
  const int64_t total = num_batches();
  for (int64_t b = 0; b < total; ++b) {
    Item item;
    try {
      item.batch = collate(b);
    } catch (...) {
      item.error = std::current_exception();
    }
    std::unique_lock<std::mutex> lock(mutex_);
    cv_.wait(lock, [&] {
      return stop_ || static_cast<int64_t>(queue_.size()) < options_.prefetch;
    });
    if (stop_) return;
    const bool failed = static_cast<bool>(item.error);
    queue_.push_back(std::move(item));
    lock.unlock();
    cv_.notify_all();
    if (failed) return;  // the consumer rethrows and ends the epoch
  }
}

bool GraphDataLoader::next(GraphBatch& out) {
  LAPIS_CHECK(epoch_ >= 0, "GraphDataLoader::next", "no epoch started: call start_epoch() first");
  if (next_batch_ >= num_batches()) return false;
  GraphBatch batch;
  if (options_.background) {
    Item item;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [&] { return !queue_.empty(); });
      item = std::move(queue_.front());
      queue_.pop_front();
    }
    cv_.notify_all();
    if (item.error) {
      next_batch_ = num_batches();  // the epoch ends here; the worker has stopped
      std::rethrow_exception(item.error);
    }
    batch = std::move(item.batch);
  } else {
    try {
      batch = collate(next_batch_);
    } catch (...) {
      next_batch_ = num_batches();
      throw;
    }
  }
  ++next_batch_;
  out = options_.device.is_cpu() ? std::move(batch) : batch.to(options_.device);
  return true;
}

}  // namespace graph
}  // namespace lapis
