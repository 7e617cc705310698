// Executor: step broadcast, micro-batched pipeline, tensor-parallel sampling.
#include "engine/executor.h"

#include <algorithm>
#include <cstring>

#include "base/clock.h"

namespace meshlm::engine {

struct Executor::Sequence {
  std::unique_ptr<model::KvCache> cache;
  std::unique_ptr<Sampler> sampler;
  SamplingParams params;
  std::vector<int32_t> history;   // every token fed so far: the repetition-penalty window
  size_t prompt_len = 0;          // history[prompt_len..] are generated tokens
  const SeqWork* work = nullptr;  // this step's work, while a step runs
};

Executor::Executor(comm::Group& world, ThreadPool& pool) : world_(world), pool_(pool) {}
Executor::~Executor() = default;

Result<std::unique_ptr<Executor>> Executor::Create(comm::Group& world,
                                                   std::unique_ptr<model::Model> model,
                                                   const parallel::Plan& plan, ThreadPool& pool) {
  if (plan.ranks.size() != static_cast<size_t>(world.size())) {
    return Error("[executor] the plan has {} ranks but the job has {}", plan.ranks.size(),
                 world.size());
  }
  std::unique_ptr<Executor> e(new Executor(world, pool));
  e->pp_ = plan.pp;
  e->model_ = std::move(model);
  MESHLM_ASSIGN_OR_RETURN(e->runtime_, parallel::Runtime::Create(world, e->model_.get(), plan));
  return e;
}

Result<std::unique_ptr<Executor>> Executor::CreateLocal(std::unique_ptr<model::Model> model,
                                                        ThreadPool& pool) {
  auto world = comm::MakeSingletonGroup();
  parallel::PlanRequest req;
  MESHLM_ASSIGN_OR_RETURN(parallel::Plan plan, parallel::MakePlan(model->config(), req));
  MESHLM_ASSIGN_OR_RETURN(auto e, Create(*world, std::move(model), plan, pool));
  e->owned_world_ = std::move(world);
  return e;
}

Status Executor::Timed(const Status& s, double since) {
  times_.comm_seconds += NowSeconds() - since;
  return s;
}

Status Executor::Validate(const std::vector<SeqWork>& work) const {
  const auto& c = model_->config();
  std::map<uint64_t, bool> seen;
  for (const SeqWork& w : work) {
    if (!seen.emplace(w.id, true).second)
      return Error("[executor] sequence {} appears twice", w.id);
    const auto it = seqs_.find(w.id);
    if (w.start && it != seqs_.end()) return Error("[executor] sequence {} already exists", w.id);
    if (!w.start && it == seqs_.end()) return Error("[executor] sequence {} does not exist", w.id);
    if (w.start) MESHLM_RETURN_IF_ERROR(w.params.Validate());
    if (w.fork) {
      // The source must exist before this step (not start in it) and hold the prefix.
      const auto src = seqs_.find(w.fork_from);
      const bool starts_now = std::any_of(work.begin(), work.end(), [&](const SeqWork& o) {
        return o.id == w.fork_from && o.start;
      });
      if (src == seqs_.end() || starts_now) {
        return Error("[executor] sequence {} forks from {}, which does not exist", w.id,
                     w.fork_from);
      }
      if (w.fork_len > src->second->cache->length()) {
        return Error("[executor] sequence {} forks {} positions of {}, which holds {}", w.id,
                     w.fork_len, w.fork_from, src->second->cache->length());
      }
    }
    const size_t used = w.start ? (w.fork ? w.fork_len : 0) : it->second->cache->length();
    if (used + w.tokens.size() > model_->max_context()) {
      return Error("[executor] sequence {}: {} tokens exceed the context of {}", w.id,
                   used + w.tokens.size(), model_->max_context());
    }
    for (int32_t t : w.tokens) {
      if (t < 0 || t >= c.vocab_size) {
        return Error("[executor] token id {} out of range [0, {})", t, c.vocab_size);
      }
    }
  }
  return OkStatus();
}

Result<std::vector<int32_t>> Executor::Step(std::vector<SeqWork> work, std::vector<float>* logits) {
  MESHLM_RETURN_IF_ERROR(Validate(work));
  StepMessage msg;
  msg.seqs = std::move(work);
  msg.return_logits = logits != nullptr;
  if (world_.size() > 1) {
    const std::string bytes = EncodeStep(msg);
    uint64_t n = bytes.size();
    const double t0 = NowSeconds();
    MESHLM_RETURN_IF_ERROR(Timed(world_.Broadcast(&n, sizeof(n), 0), t0));
    MESHLM_RETURN_IF_ERROR(
        Timed(world_.Broadcast(const_cast<char*>(bytes.data()), bytes.size(), 0), t0));
  }
  MESHLM_ASSIGN_OR_RETURN(std::vector<int32_t> tokens, Execute(msg));
  if (logits) *logits = step_logits_;
  return tokens;
}

Status Executor::Shutdown() {
  if (world_.size() == 1) return OkStatus();
  StepMessage msg;
  msg.kind = StepKind::kShutdown;
  const std::string bytes = EncodeStep(msg);
  uint64_t n = bytes.size();
  MESHLM_RETURN_IF_ERROR(world_.Broadcast(&n, sizeof(n), 0));
  return world_.Broadcast(const_cast<char*>(bytes.data()), bytes.size(), 0);
}

Status Executor::ShareTimes(std::vector<StepTimes>* all) {
  const StepTimes mine = total_times();
  const double send[2] = {mine.compute_seconds, mine.comm_seconds};
  std::vector<double> got(2 * world_.size());
  MESHLM_RETURN_IF_ERROR(world_.AllGather(send, sizeof(send), got.data()));
  all->resize(world_.size());
  for (int r = 0; r < world_.size(); ++r) (*all)[r] = {got[2 * r], got[2 * r + 1]};
  return OkStatus();
}

Result<std::vector<StepTimes>> Executor::GatherTimes() {
  std::vector<StepTimes> all = {total_times()};
  if (world_.size() == 1) return all;
  StepMessage msg;
  msg.kind = StepKind::kReport;
  const std::string bytes = EncodeStep(msg);
  uint64_t n = bytes.size();
  MESHLM_RETURN_IF_ERROR(world_.Broadcast(&n, sizeof(n), 0));
  MESHLM_RETURN_IF_ERROR(world_.Broadcast(const_cast<char*>(bytes.data()), bytes.size(), 0));
  MESHLM_RETURN_IF_ERROR(ShareTimes(&all));
  return all;
}

Status Executor::RunWorker() {
  // Step messages come from rank 0, which is authenticated; they are still checked.
  constexpr uint64_t kMaxStepBytes = 256ull << 20;
  std::vector<uint8_t> buf;
  for (;;) {
    uint64_t n = 0;
    // An idle server sends nothing: wait without a deadline for rank 0's next step (a
    // closed connection to rank 0 still ends the wait at once).
    MESHLM_RETURN_IF_ERROR(world_.WaitForMessage(0));
    MESHLM_RETURN_IF_ERROR(world_.Broadcast(&n, sizeof(n), 0));
    if (n > kMaxStepBytes) return Error("[executor] step message of {} bytes refused", n);
    buf.resize(n);
    MESHLM_RETURN_IF_ERROR(world_.Broadcast(buf.data(), n, 0));
    MESHLM_ASSIGN_OR_RETURN(StepMessage msg, DecodeStep(buf.data(), n));
    if (msg.kind == StepKind::kShutdown) return OkStatus();
    if (msg.kind == StepKind::kReport) {
      std::vector<StepTimes> all;
      MESHLM_RETURN_IF_ERROR(ShareTimes(&all));
      continue;
    }
    MESHLM_RETURN_IF_ERROR(Validate(msg.seqs));
    auto done = Execute(msg);
    if (!done.ok()) return done.status();
  }
}

Result<std::vector<int32_t>> Executor::Execute(const StepMessage& msg) {
  const double step_start = NowSeconds();
  const double comm_before = times_.comm_seconds, runtime_before = runtime_->comm_seconds();
  std::vector<Sequence*> active;
  for (const SeqWork& w : msg.seqs) {
    if (w.start) {
      auto s = std::make_unique<Sequence>();
      s->cache = model_->NewCache();
      s->params = w.params;
      s->sampler = std::make_unique<Sampler>(w.params);
      if (w.fork) {
        const Sequence& src = *seqs_.at(w.fork_from);
        s->cache->CopyPrefix(*src.cache, w.fork_len);
        s->history.assign(src.history.begin(), src.history.begin() + w.fork_len);
      }
      s->prompt_len = s->history.size() + w.tokens.size();
      seqs_[w.id] = std::move(s);
    }
    Sequence* s = seqs_.at(w.id).get();
    s->work = &w;
    if (!w.tokens.empty()) {
      s->history.insert(s->history.end(), w.tokens.begin(), w.tokens.end());
      active.push_back(s);
    }
  }
  std::vector<int32_t> tokens(active.size(), -1);
  const size_t V = model_->config().vocab_size;
  const bool full_rows = msg.return_logits;
  step_logits_.assign(full_rows ? active.size() * V : 0, 0.0f);
  // One micro-batch per stage (when there are enough sequences) keeps every stage busy.
  const size_t m = std::min(pp_, active.size());
  for (size_t j = 0; j < m; ++j) {
    const model::Range r = model::SplitEven(active.size(), m, j);
    std::vector<Sequence*> part(active.begin() + r.begin, active.begin() + r.end);
    std::vector<int32_t> part_tokens;
    MESHLM_RETURN_IF_ERROR(RunMicroBatch(part, full_rows, &part_tokens,
                                         full_rows ? &step_logits_[r.begin * V] : nullptr));
    if (!part_tokens.empty())
      std::copy(part_tokens.begin(), part_tokens.end(), tokens.begin() + r.begin);
  }
  if (!active.empty()) {
    // The last stage's first member returns the tokens (and rows) to rank 0.
    MESHLM_RETURN_IF_ERROR(runtime_->ToDriver(tokens.data(), tokens.size() * 4));
    if (full_rows) {
      MESHLM_RETURN_IF_ERROR(runtime_->ToDriver(step_logits_.data(), step_logits_.size() * 4));
    }
  }
  for (const SeqWork& w : msg.seqs) {
    if (w.release)
      seqs_.erase(w.id);
    else
      seqs_.at(w.id)->work = nullptr;
  }
  times_.comm_seconds += runtime_->comm_seconds() - runtime_before;
  times_.compute_seconds += (NowSeconds() - step_start) - (times_.comm_seconds - comm_before);
  return tokens;
}

Status Executor::RunMicroBatch(const std::vector<Sequence*>& seqs, bool full_rows,
                               std::vector<int32_t>* tokens, float* rows_out) {
  const size_t D = model_->config().hidden_size;
  std::vector<model::SeqStep> steps;
  size_t T = 0;
  for (Sequence* s : seqs) {
    steps.push_back({s->cache.get(), s->work->tokens.data(), s->work->tokens.size(), false});
    T += s->work->tokens.size();
  }
  if (hidden_.size() < T * D) hidden_.resize(T * D);
  const size_t vloc = model_->vocab_range().size();
  const bool last = runtime_->last_stage();
  if (last && logits_.size() < seqs.size() * vloc) logits_.resize(seqs.size() * vloc);
  MESHLM_RETURN_IF_ERROR(runtime_->Forward(steps, T, hidden_.data(), logits_.data(), pool_));
  if (!last) return OkStatus();
  return SampleRows(seqs, logits_.data(), full_rows, tokens, rows_out);
}

Status Executor::SampleRows(const std::vector<Sequence*>& seqs, float* logits, bool full_rows,
                            std::vector<int32_t>* tokens, float* rows_out) {
  const size_t n = seqs.size(), V = model_->config().vocab_size;
  tokens->assign(n, -1);
  bool greedy = !full_rows;
  for (Sequence* s : seqs) {
    greedy = greedy && s->params.temperature == 0.0f && s->params.repetition_penalty == 1.0f &&
             s->params.presence_penalty == 0.0f && s->params.frequency_penalty == 0.0f &&
             s->params.logit_bias.empty();
  }
  // Greedy rows need only each shard's best (logit, id); sampling needs whole rows.
  if (greedy) return runtime_->BestTokens(logits, n, tokens);
  MESHLM_ASSIGN_OR_RETURN(float* rows, runtime_->GatherRows(logits, n));
  if (rows_out) std::memcpy(rows_out, rows, n * V * sizeof(float));
  for (size_t i = 0; i < n; ++i) {
    const std::span<const int32_t> history = seqs[i]->history;
    (*tokens)[i] =
        seqs[i]->sampler->Sample({rows + i * V, V}, history, history.subspan(seqs[i]->prompt_len));
  }
  return OkStatus();
}

}  // namespace meshlm::engine
