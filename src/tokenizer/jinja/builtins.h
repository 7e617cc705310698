// Helpers shared by the filters (filters.cc) and the methods and tests (builtins.cc) of
// the chat-template language. Each throws TemplateError for bad arguments.
#pragma once

#include <string>
#include <vector>

#include "tokenizer/jinja/value.h"

namespace meshlm::jinja {

/// `s` split at every `sep` (which must not be empty).
std::vector<std::string> SplitAll(const std::string& s, const std::string& sep);
/// The items as strings joined by `sep`; none and undefined items add nothing.
std::string Join(const Array& items, const std::string& sep);
/// Argument `k`, else the keyword argument `name`; null when neither is given.
const Value* Arg(const Array& args, size_t k, const Kwargs& kwargs, const char* name);
/// -1, 0 or 1 for numbers (and booleans) and strings; throws for other pairs.
int Compare(const Value& a, const Value& b, bool case_sensitive);
/// `item.a.b.0`: mapping entries and array indices along a dotted path; undefined when
/// one is missing.
Value AttributePath(const Value& item, const std::string& path);
/// The string method `name` (upper, split, replace...) called on `s`.
Value StringMethod(const std::string& s, const std::string& name, Array& args, Kwargs& kwargs);
/// A mapping's [key, value] pairs, in order.
Value Items(const Value& o);
/// The mapping method `name` (get, items, keys, values, dictsort) called on `o`.
Value ObjectMethod(const Value& o, const std::string& name, Array& args, Kwargs& kwargs);

}  // namespace meshlm::jinja
