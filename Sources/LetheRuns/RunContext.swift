import Foundation
import LetheData
import LetheModels
import LetheJSON
import LetheSpec
import LetheTensor

/// What every executor reads from a resolved spec: data, image size, task, seeded streams, budget.
struct RunContext {
    let spec: JSONValue
    let train: LabeledImages
    let test: LabeledImages
    let size: Int
    let task: MaskTransform
    let seed: Philox
    let mode: Numerics.Mode

    init(_ plan: Plan, threads: Int) throws {
        spec = plan.resolved
        mode = Numerics.Mode(rawValue: spec["numerics"]?["mode"]?.stringValue ?? "fast") ?? .fast
        Numerics.configure(threads: threads, mode: mode)
        guard spec["data"]?["dataset"]?.stringValue == "fashion-mnist" else {
            throw RunError("the executor reads fashion-mnist so far; image-folder and npz data sets are planned and hashed but not loaded yet")
        }
        let root = spec["data"]?["root"]?.stringValue ?? FashionMNIST.defaultRoot
        train = try FashionMNIST.load(root: root, split: .train)
        test = try FashionMNIST.load(root: root, split: .test)
        size = spec["data"]?["image_size"]?.intValue ?? 32
        task = MaskTransform(kind: MaskTransform.Kind(rawValue: spec["task"]?["mask"]?.stringValue ?? "center_crop") ?? .centerCrop,
                             ratio: spec["task"]?["ratio"]?.doubleValue ?? 0.25)
        seed = Philox(seed: UInt64(spec["seed"]?.intValue ?? 0))
    }

    var trainSettings: JSONValue { spec["train"] ?? .object(JSONObject()) }
    var perClassLimit: Int? { spec["data"]?["per_class_limit"]?.intValue }
    var testPerClass: Int { spec["evaluate"]?["test_per_class"]?.intValue ?? 100 }

    /// The classes of a split (`data.<name>.classes`); index-file splits are not read at run time yet.
    func classes(_ name: String) throws -> [Int] {
        guard let split = spec["data"]?[name] else { throw RunError("data.\(name) is not set") }
        guard let classes = split["classes"]?.arrayValue?.compactMap(\.intValue) else {
            throw RunError("data.\(name) is an index file; the executor reads class lists so far (index files are planned and hashed)")
        }
        return classes
    }

    func family(rng: inout Philox) -> any ModelFamily {
        Families.make(model: spec["model"]!, imageSize: size, channels: train.channels, rng: &rng)
    }

    /// Draws batches of `batch` indices from `pool`, reshuffling with `rng` after each pass.
    struct Batches {
        let pool: [Int]
        let batch: Int
        var rng: Philox
        var order: [Int] = []
        var cursor = 0

        mutating func next() -> [Int] {
            if cursor + batch > order.count {
                order = rng.permutation(pool.count)
                cursor = 0
            }
            defer { cursor += batch }
            return (cursor..<min(order.count, cursor + batch)).map { pool[order[$0]] }
        }
    }
}

/// The parts every training run shares.
enum Training {
    /// One optimiser update from `loss`. A loss that is not finite stops the run, with the state
    /// before the step saved. Returns the gradient norm before clipping.
    static func update(_ optimizer: inout AnyOptimizer, loss: Tensor<Float>, clip: Double?, step: Int,
                       module: Module<Float>, dir: RunDirectory) throws -> Double {
        guard loss.scalar.isFinite else {
            try dir.write("checkpoint.failed.safetensors", bytes: Safetensors.write(module.stateDict()))
            throw RunError("the loss became \(loss.scalar) at step \(step + 1); the state before the step is in \(dir.stagingPath)/checkpoint.failed.safetensors. Lower train.optimizer.lr or set train.grad_clip")
        }
        loss.backward()
        let norm = clip.map { clipGradNorm(optimizer.parameters, maxNorm: $0) } ?? Optimizers.gradNorm(optimizer.parameters)
        optimizer.step()
        return norm
    }

    /// Writes the results and the common files, then the manifest, and moves the run into place.
    static func finish(_ dir: RunDirectory, plan: Plan, module: Module<Float>, curve: [String], timing: [String],
                       eval: JSONValue, samples: [Tensor<Float>], threads: Int, mode: Numerics.Mode) throws -> String {
        try dir.write("checkpoint.safetensors", bytes: Safetensors.write(module.stateDict(metadata: ["lethe_config_hash": plan.configHash])))
        try dir.write("metrics.jsonl", text: curve.joined(separator: "\n") + "\n")
        try dir.write("timing.jsonl", text: timing.joined(separator: "\n") + "\n")
        try dir.write("eval.json", json: eval)
        do { try ImageGrid.write(rows: samples, to: dir.path("samples.png")) } catch { throw RunError(error.description) }
        try RunFiles.writeCommon(plan, into: dir, threads: threads, mode: mode)
        try dir.finish()
        return plan.runDirectory
    }
}
