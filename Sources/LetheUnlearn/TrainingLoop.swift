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

    /// One line of `timing.jsonl` (kept apart: wall-clock times differ from run to run); with the time
    /// the resume state took to save after the step, when it was saved.
    func timingLine(checkpointSeconds: Double? = nil) -> String {
        var fields: [(String, JSONValue)] = [
            ("step", .integer(step)), ("seconds", .number(seconds)),
            ("images_per_second", .number(Double(images) / max(seconds, 1e-12))),
        ]
        if let checkpointSeconds { fields.append(("checkpoint_seconds", .number(checkpointSeconds))) }
        return JSONText.line(.object(JSONObject(fields)))
    }

    var timingLine: String { timingLine() }
}

/// The one training loop every stage runs (pretraining, unlearning, the feature classifier): for each
/// step, the scheduled learning rate, zeroed gradients, the stage's loss, one update (a loss that is
/// not finite stops the run with the state before the step saved), the step's records and the
/// progress line.
///
/// It is also where runs resume (`train.checkpoint_every`): every that many steps, at the end of
/// training, and when a stop signal arrives (SIGTERM, SIGINT, SIGHUP: deferred while it runs), it
/// saves the complete state (`ResumeState`: module, optimiser, step, records, the stage's streams, the
/// family's training state) into the staging folder; a later attempt of the same stage starts from
/// there, says so, and ends bit for bit where an uninterrupted run ends.
struct TrainingLoop {
    /// What a stage computes in one step: the loss to descend, the terms to record, the images seen.
    struct Step {
        var loss: Tensor<Float>
        var terms: [(name: String, value: Double)]
        var images: Int
    }

    /// Where and how often the loop saves the state it resumes from.
    struct Resume {
        var every: Int
        var threads: Int
        var mode: Numerics.Mode
        /// The model family whose training state beyond the parameters is saved too (VQ codebooks).
        var family: (any ModelFamily)? = nil
    }

    var optimizer: AnyOptimizer
    let schedule: LRSchedule
    let clip: Double?
    let steps: Int
    let module: Module<Float>
    var progress: Progress
    let resume: Resume
    private(set) var curve: [String] = []
    private(set) var timing: [String] = []

    init(
        optimizer: AnyOptimizer, schedule: LRSchedule, clip: Double?, steps: Int, module: Module<Float>,
        progress: Progress, resume: Resume
    ) {
        self.optimizer = optimizer
        self.schedule = schedule
        self.clip = clip
        self.steps = steps
        self.module = module
        self.progress = progress
        self.resume = resume
    }

    /// Runs the steps not yet done; `streams` is the stage's state between steps, handed to `body`
    /// with the step's index, saved and restored with the rest.
    mutating func run<S: StageStreams>(into dir: RunDirectory, streams: inout S, _ body: (Int, inout S) throws -> Step)
        throws
    {
        let build = ResumeState.Build.current(threads: resume.threads, mode: resume.mode)
        var first = try restore(from: dir, streams: &streams, build: build)
        progress.resumedAt = first
        try StopSignals.deferring {
            while first < steps {
                let step = first
                first += 1
                let started = Date()
                optimizer.learningRate = schedule.rate(at: step)
                optimizer.zeroGrad()
                let out = try body(step, &streams)
                let gradNorm = try update(out.loss, step: step, dir: dir)
                let record = StepRecord(
                    step: step + 1, terms: out.terms, learningRate: optimizer.learningRate, gradNorm: gradNorm,
                    seconds: Date().timeIntervalSince(started), images: out.images)
                curve.append(record.metricsLine)
                progress.update(
                    step: step, loss: out.terms.first?.value ?? Double(out.loss.scalar), lr: optimizer.learningRate,
                    imagesPerSecond: Double(out.images) / max(record.seconds, 1e-12))
                let done = step + 1
                let due = (resume.every > 0 && done % resume.every == 0) || done == steps
                if due {
                    let saving = Date()
                    timing.append(record.timingLine)  // the state saved holds the timings up to this step
                    try save(done, into: dir, streams: streams, build: build)
                    timing[timing.count - 1] = record.timingLine(checkpointSeconds: Date().timeIntervalSince(saving))
                } else {
                    timing.append(record.timingLine)
                }
                TestStopHook.fire(after: done)
                if let signal = StopSignals.requested {
                    if !due { try save(done, into: dir, streams: streams, build: build) }
                    throw StopSignals.Interrupted(
                        signal: signal,
                        description:
                            "stopped by \(StopSignals.name(signal)) after step \(done)/\(steps); the state is saved in \(ResumeState.folder(dir)), and running the same spec again resumes from step \(done)"
                    )
                }
            }
        }
        // A request that arrived after the last step's check: the state of the finished training is saved.
        if let signal = StopSignals.requested {
            throw StopSignals.Interrupted(
                signal: signal,
                description:
                    "stopped by \(StopSignals.name(signal)) after training; the state is saved in \(ResumeState.folder(dir)), and running the same spec again resumes with the evaluation"
            )
        }
    }

    /// Runs a stage that carries nothing of its own between steps.
    mutating func run(into dir: RunDirectory, _ body: (Int) throws -> Step) throws {
        var none = NoStreams()
        try run(into: dir, streams: &none) { step, _ in try body(step) }
    }

    private func save<S: StageStreams>(_ done: Int, into dir: RunDirectory, streams: S, build: ResumeState.Build)
        throws
    {
        let state = optimizer.state
        var tensors = module.stateDict(prefix: "model.").tensors
        for (name, values) in state.buffers.sorted(by: { $0.key < $1.key }) {
            tensors.append(("optimizer." + name, Safetensors.Entry(Tensor(values, shape: [values.count]))))
        }
        try ResumeState(
            step: done, optimizerSteps: state.steps, curve: curve, timing: timing, stage: try streams.resumeJSON,
            family: resume.family?.trainingState ?? [:], tensors: Safetensors.File(tensors: tensors), build: build
        ).save(into: dir)
    }

    /// Restores the saved state if there is a usable one; returns the number of steps it had done
    /// (0 when training starts afresh).
    private mutating func restore<S: StageStreams>(
        from dir: RunDirectory, streams: inout S, build: ResumeState.Build
    ) throws -> Int {
        let saved: ResumeState
        do {
            guard let state = try ResumeState.load(from: dir) else { return 0 }
            saved = state
        } catch {
            print("\(progress.label): cannot resume (\(error)); starting again from step 0")
            return 0
        }
        guard saved.build.tool == build.tool, saved.build.commit == build.commit, saved.build.mode == build.mode,
            saved.step <= steps
        else {
            print(
                "\(progress.label): the saved state in \(ResumeState.folder(dir)) was written by \(saved.build.tool) at \(saved.build.commit) in \(saved.build.mode) mode; this is \(build.tool) at \(build.commit) in \(build.mode) mode, so training starts again from step 0"
            )
            return 0
        }
        do {
            try module.load(saved.tensors(under: "model."))
            let buffers = saved.tensors(under: "optimizer.").tensors
            var named: [String: [Float]] = [:]
            for (name, entry) in buffers { named[name] = try entry.values(as: Float.self) }
            try optimizer.load(OptimizerState(steps: saved.optimizerSteps, buffers: named))
            streams = try S.decoded(from: saved.stage)
            try resume.family?.restoreTrainingState(saved.family)
        } catch {
            throw RunError(
                "\(ResumeState.folder(dir)): the saved state does not fit this stage (\(error)); move the folder away to start again from step 0"
            )
        }
        curve = saved.curve
        timing = saved.timing + [JSONText.line(.object(JSONObject([("resumed_at_step", .integer(saved.step))])))]
        var note = "\(progress.label): resumed from step \(saved.step)/\(steps)"
        if saved.build.threads != build.threads && build.mode == Numerics.Mode.fast.rawValue {
            note +=
                " (it ran with \(saved.build.threads) threads and resumes with \(build.threads): in fast numerics mode its last bits may differ from an uninterrupted run)"
        }
        print(note)
        return saved.step
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
}
