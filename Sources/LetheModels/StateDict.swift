import Foundation
import LetheTensor

/// Why a checkpoint does not fit a model, naming every offending path.
public struct StateDictError: Error, Sendable, CustomStringConvertible {
    public var missing: [String] = []
    public var unexpected: [String] = []
    public var misshaped: [(path: String, expected: [Int], found: [Int])] = []
    public var unreadable: [(path: String, reason: String)] = []

    public var isEmpty: Bool { missing.isEmpty && unexpected.isEmpty && misshaped.isEmpty && unreadable.isEmpty }

    public var description: String {
        var lines: [String] = []
        if !missing.isEmpty { lines.append("missing keys: " + missing.joined(separator: ", ")) }
        if !unexpected.isEmpty { lines.append("unexpected keys: " + unexpected.joined(separator: ", ")) }
        for m in misshaped { lines.append("\(m.path): shape \(m.found) in the checkpoint, \(m.expected) in the model") }
        for u in unreadable { lines.append("\(u.path): \(u.reason)") }
        return lines.joined(separator: "\n")
    }
}

extension Module {
    /// The parameters as a safetensors file (F32 unless `dtype` says otherwise).
    /// Every path starts with `prefix` (a part of a larger model saved alone: MAGE's `tokenizer.`).
    public func stateDict(dtype: Safetensors.DType = .F32, prefix: String = "", metadata: [String: String]? = nil)
        -> Safetensors.File
    {
        Safetensors.File(
            tensors: namedParameters(prefix: prefix).map { ($0.path, Safetensors.Entry($0.tensor, dtype: dtype)) },
            metadata: metadata
        )
    }

    /// Loads every parameter from `file`. Strict: a missing, unexpected or mis-shaped key, or a tensor
    /// holding NaN or infinity, is an error that names each path, and nothing is changed unless
    /// everything fits.
    /// `prefix`: the file's paths carry it (see `stateDict(prefix:)`).
    public func load(_ file: Safetensors.File, prefix: String = "") throws(StateDictError) {
        var problems = StateDictError()
        let params = namedParameters(prefix: prefix)
        let wanted = Set(params.map(\.path))
        problems.unexpected = file.tensors.map(\.name).filter { !wanted.contains($0) }
        var staged: [(Tensor<T>, [T])] = []
        for (path, tensor) in params {
            guard let entry = file[path] else {
                problems.missing.append(path)
                continue
            }
            guard entry.shape == tensor.shape else {
                problems.misshaped.append((path, tensor.shape, entry.shape))
                continue
            }
            do {
                let values = try entry.values(as: T.self)
                let bad = values.reduce(0) { $0 + ($1.isFinite ? 0 : 1) }
                guard bad == 0 else {
                    problems.unreadable.append(
                        (
                            path,
                            "holds \(bad) non-finite value\(bad == 1 ? "" : "s") (NaN or infinity); weights of a model that diverged cannot be used"
                        ))
                    continue
                }
                staged.append((tensor, values))
            } catch {
                problems.unreadable.append((path, error.description))
            }
        }
        guard problems.isEmpty else { throw problems }
        for (tensor, values) in staged { tensor.assign(values) }
    }
}
