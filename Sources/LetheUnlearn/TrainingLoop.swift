import Foundation
import LetheJSON
import LetheModels
import LetheRuns
import LetheTensor

/// What one optimiser step reports: its loss terms by name (the first is the one the progress line
/// shows), the images it saw, and what the loop measured.
struct StepRecord {
    var step: Int
    var terms: [(name: String, value: Double)]
    var learningRate: Double
    var gradNorm: Double
    var seconds: Double
    var images: Int

    /// One line of `metrics.jsonl`: the step, the terms, the learning rate and the gradient norm.
    var metricsLine: String {
        let fields: [(String, JSONValue)] =
            [("step", .integer(step))] + terms.map { ($0.name, .number($0.value)) }
            + [("lr", .number(learningRate)), ("grad_norm", .number(gradNorm))]
        return JSONText.line(.object(JSONObject(fields)))
    }

    /// One line of `timing.jsonl` (kept apart: wall-clock times differ from run to run).
    var timingLine: String {
        JSONText.line(
            .object(
                JSONObject([
                    ("step", .integer(step)), ("seconds", .number(seconds)),
                    ("images_per_second", .number(Double(images) / max(seconds, 1e-12))),
                ])))
    }
}

/// The one training loop every stage runs (pretraining, unlearning, the feature classifier): for each
/// step, the scheduled learning rate, zeroed gradients, the stage's loss, one update (a loss that is
/// not finite stops the run with the state before the step saved), the step's records and the
/// progress line.
struct TrainingLoop {
    /// What a stage computes in one step: the loss to descend, the terms to record, the images seen.
    struct Step {
        var loss: Tensor<Float>
        var terms: [(name: String, value: Double)]
        var images: Int
    }

    var optimizer: AnyOptimizer
    let schedule: LRSchedule
    let clip: Double?
    let steps: Int
    let module: Module<Float>
    let progress: Progress
    private(set) var records: [StepRecord] = []

    init(
        optimizer: AnyOptimizer, schedule: LRSchedule, clip: Double?, steps: Int, module: Module<Float>,
        progress: Progress
    ) {
        self.optimizer = optimizer
        self.schedule = schedule
        self.clip = clip
        self.steps = steps
        self.module = module
        self.progress = progress
    }

    mutating func run(into dir: RunDirectory, _ body: (Int) throws -> Step) throws {
        for step in 0..<steps {
            let started = Date()
            optimizer.learningRate = schedule.rate(at: step)
            optimizer.zeroGrad()
            let out = try body(step)
            let gradNorm = try update(out.loss, step: step, dir: dir)
            let record = StepRecord(
                step: step + 1, terms: out.terms, learningRate: optimizer.learningRate, gradNorm: gradNorm,
                seconds: Date().timeIntervalSince(started), images: out.images)
            records.append(record)
            progress.update(
                step: step, loss: out.terms.first?.value ?? Double(out.loss.scalar), lr: optimizer.learningRate,
                imagesPerSecond: Double(out.images) / max(record.seconds, 1e-12))
        }
    }

    /// One optimiser update from `loss`; returns the gradient norm before clipping.
    private mutating func update(_ loss: Tensor<Float>, step: Int, dir: RunDirectory) throws -> Double {
        guard loss.scalar.isFinite else {
            try dir.write("checkpoint.failed.safetensors", bytes: Safetensors.write(module.stateDict()))
            throw RunError(
                "the loss became \(loss.scalar) at step \(step + 1); the state before the step is in \(dir.stagingPath)/checkpoint.failed.safetensors. Lower train.optimizer.lr or set train.grad_clip"
            )
        }
        loss.backward()
        let norm =
            clip.map { clipGradNorm(optimizer.parameters, maxNorm: $0) } ?? Optimizers.gradNorm(optimizer.parameters)
        optimizer.step()
        return norm
    }

    var curve: [String] { records.map(\.metricsLine) }
    var timing: [String] { records.map(\.timingLine) }
}
