// The model's generation defaults as request sampling defaults.
#include "engine/request.h"

#include "model/config.h"

namespace meshlm::engine {

SamplingParams DefaultSampling(const model::GenerationDefaults& defaults) {
  SamplingParams p;
  p.temperature = defaults.temperature;
  p.top_k = defaults.top_k;
  p.top_p = defaults.top_p;
  p.min_p = defaults.min_p;
  p.repetition_penalty = defaults.repetition_penalty;
  return p;
}

}  // namespace meshlm::engine
