import Foundation
import LetheData
import LetheJSON
import LetheModels
import LetheSpec
import LetheTensor

/// Executes a `kind: unlearn` plan with the paper's objective ("ours"):
///
///     L = d(E(T(x_r)), E0(T(x_r))) + alpha * d(E(T(x_f)), E0(T(n)))
///
/// Only the encoder E trains; the decoder and the teacher E0 (the original encoder) are frozen; the
/// noise n passes through the same mask T. The baselines are the next milestone.
public struct Unlearner {
    public let plan: Plan
    public let threads: Int

    public init(plan: Plan, threads: Int) {
        self.plan = plan
        self.threads = threads
    }

    /// The original model's checkpoint: the pretrain stage's, or `model.checkpoint`.
    var originalCheckpoint: String {
        plan.dependencies.first.map { $0.runDirectory + "/checkpoint.safetensors" } ?? plan.resolved["model"]?["checkpoint"]?.stringValue ?? ""
    }

    public func run() throws -> String {
        let context = try RunContext(plan, threads: threads)
        let spec = context.spec, u = spec["unlearn"] ?? .object(JSONObject())
        let method = u["method"]?.stringValue ?? "ours"
        guard method == "ours" else { throw RunError("unlearn.method \(method) is a baseline that is not built yet; 'ours' is") }

        // Student and frozen teacher, both loaded strictly from the original checkpoint.
        var initRNG = context.seed.split("init")
        let student = context.family(rng: &initRNG), teacher = context.family(rng: &initRNG)
        let weights: Safetensors.File
        do {
            weights = try Safetensors.read([UInt8](try Data(contentsOf: URL(fileURLWithPath: originalCheckpoint))))
        } catch {
            throw RunError("\(originalCheckpoint): cannot load the original model: \(error)")
        }
        do {
            try student.module.load(weights)
            try teacher.module.load(weights)
        } catch {
            throw RunError("\(originalCheckpoint) does not fit the model in the spec:\n\(error)")
        }
        teacher.module.setTrainable(false)
        student.module.setTrainable(false)
        student.encoderParameters.forEach { $0.requiresGrad = true }

        let (train, size, task) = (context.train, context.size, context.task)
        let forgetClasses = try context.classes("forget")
        let retainClasses = try context.classes(u["proxy_retain"]?.boolValue == true ? "proxy_retain" : "retain")
        let t = context.trainSettings
        let steps = t["steps"]?.intValue ?? 200
        var retain = RunContext.Batches(pool: train.indices(ofClasses: retainClasses, perClassLimit: context.perClassLimit),
                                        batch: t["batch_size"]?.intValue ?? 32, rng: context.seed.split("retain"))
        var forget = RunContext.Batches(pool: train.indices(ofClasses: forgetClasses, perClassLimit: context.perClassLimit),
                                        batch: t["forget_batch_size"]?.intValue ?? 32, rng: context.seed.split("forget"))
        let noiseModel = try NoiseModel(u["noise"] ?? .object(JSONObject()))
        let objective = Objective(alpha: Float(u["alpha"]?.doubleValue ?? 0.25), distance: u["distance"]?.stringValue ?? "mse",
                                  normalize: u["normalize_embeddings"]?.boolValue ?? false)
        var optimizer = Optimizers.make(t["optimizer"] ?? .object(JSONObject()), parameters: student.encoderParameters)
        let schedule = Optimizers.schedule(t, steps: steps)
        let clip = t["grad_clip"]?.doubleValue
        var masks = context.seed.split("masks"), noise = context.seed.split("noise"), draws = context.seed.split("draws")

        let dir = try RunDirectory(finalPath: plan.runDirectory)
        var curve: [String] = [], timing: [String] = []
        let progress = Progress(label: "unlearn (ours)", total: steps, every: t["log_every"]?.intValue ?? 10)
        for step in 0..<steps {
            let started = Date()
            let xr = train.tensor(retain.next(), size: size), xf = train.tensor(forget.next(), size: size)
            let n = noiseModel.sample(like: xf, rng: &noise)
            let hidden = task.hidden(size: size, rng: &masks)
            let stepDraws = draws.split(UInt64(step))
            var a = stepDraws.split("retain"), b = stepDraws.split("retain"), c = stepDraws.split("forget"), d = stepDraws.split("forget")
            let (targetR, targetF) = GradMode.withoutGrad {
                (teacher.embed(xr, hidden: hidden, rng: &a),
                 teacher.embed(student.forgetTargetImage(forget: xf, noise: n, hidden: hidden), hidden: hidden, rng: &c))
            }
            optimizer.learningRate = schedule.rate(at: step)
            optimizer.zeroGrad()
            let retainTerm = objective.distance(student.embed(xr, hidden: hidden, rng: &b), targetR)
            let forgetTerm = objective.distance(student.embed(xf, hidden: hidden, rng: &d), targetF)
            let loss = retainTerm + forgetTerm * objective.alpha
            let gradNorm = try Training.update(&optimizer, loss: loss, clip: clip, step: step, module: student.module, dir: dir)
            let seconds = Date().timeIntervalSince(started)
            curve.append(JSONText.line(.object(JSONObject([
                ("step", .integer(step + 1)), ("retain_term", .number(Double(retainTerm.scalar))), ("forget_term", .number(Double(forgetTerm.scalar))),
                ("total", .number(Double(loss.scalar))), ("lr", .number(optimizer.learningRate)), ("grad_norm", .number(gradNorm)),
            ]))))
            timing.append(JSONText.line(.object(JSONObject([("step", .integer(step + 1)), ("seconds", .number(seconds)),
                                                            ("images_per_second", .number(Double(xr.shape[0] + xf.shape[0]) / seconds))]))))
            progress.update(step: step, loss: Double(loss.scalar), lr: optimizer.learningRate, imagesPerSecond: Double(xr.shape[0] + xf.shape[0]) / seconds)
        }

        // Completion quality on held-out retain and forget classes, original vs unlearned.
        let test = context.test
        let retainTest = test.indices(ofClasses: retainClasses, perClassLimit: context.testPerClass)
        let forgetTest = test.indices(ofClasses: forgetClasses, perClassLimit: context.testPerClass)
        let evalRNG = context.seed.split("eval")
        let results = GradMode.withoutGrad {
            [(teacher, retainTest), (student, retainTest), (teacher, forgetTest), (student, forgetTest)].map { family, indices in
                Evaluation.completion(family, test: test, indices: indices, size: size, task: task, rng: evalRNG)
            }
        }
        func side(_ r: CompletionEvaluation, _ meanFill: Bool = false) -> JSONValue { .number(meanFill ? r.psnrMeanFill : r.psnrModel) }
        let eval = JSONValue.object(JSONObject([
            ("metric", .string("PSNR (dB) of the completed hidden region on held-out test images")),
            ("images", .object(JSONObject([("retain", .integer(retainTest.count)), ("forget", .integer(forgetTest.count))]))),
            ("original", .object(JSONObject([("retain", side(results[0])), ("forget", side(results[2]))]))),
            ("unlearned", .object(JSONObject([("retain", side(results[1])), ("forget", side(results[3]))]))),
            ("mean_fill_baseline", .object(JSONObject([("retain", side(results[0], true)), ("forget", side(results[2], true))]))),
        ]))
        let k = min(4, retainTest.count, forgetTest.count)
        let rows = [results[0].masked, results[0].truth, results[0].completed, results[1].completed].enumerated().map { i, retainRow in
            Tensor.concat([retainRow.slice(axis: 0, 0..<k), [results[2].masked, results[2].truth, results[2].completed, results[3].completed][i].slice(axis: 0, 0..<k)], axis: 0)
        }

        return try Training.finish(dir, plan: plan, module: student.module, curve: curve, timing: timing, eval: eval,
                                   samples: rows, threads: threads, mode: context.mode)
    }
}

/// The distance between student and teacher embeddings, summed over feature maps.
struct Objective {
    let alpha: Float
    let distance: String
    let normalize: Bool

    func distance(_ a: [Tensor<Float>], _ b: [Tensor<Float>]) -> Tensor<Float> {
        zip(a.dropFirst(), b.dropFirst()).reduce(one(a[0], b[0])) { $0 + one($1.0, $1.1) }
    }

    /// mse: mean over every element (the authors' code); l2: per-sample L2 norm, averaged (the paper).
    func one(_ a: Tensor<Float>, _ b: Tensor<Float>) -> Tensor<Float> {
        var (x, y) = (a.reshaped([a.shape[0], -1]), b.reshaped([b.shape[0], -1]))
        if normalize {
            x = x / (x.square().sum(axis: 1, keepDims: true) + 1e-12).sqrt()
            y = y / (y.square().sum(axis: 1, keepDims: true) + 1e-12).sqrt()
        }
        return distance == "l2" ? ((x - y).square().sum(axis: 1) + 1e-12).sqrt().mean() : x.mseLoss(y)
    }
}

/// The noise n ~ N(mu, Sigma) whose teacher embedding is the forget target.
struct NoiseModel {
    enum Kind { case fixed(mean: Float, sigma: Float), perBatch }
    let kind: Kind
    let clamp: (Float, Float)?

    init(_ spec: JSONValue) throws {
        let covariance = spec["covariance"]?.stringValue ?? "identity"
        let c = spec["clamp"]?.arrayValue?.compactMap(\.doubleValue)
        clamp = c.flatMap { $0.count == 2 ? (Float($0[0]), Float($0[1])) : nil }
        switch covariance {
        case "identity", "isotropic":
            guard let mean = spec["mean"]?.doubleValue else { throw RunError("unlearn.noise.mean 'estimate' needs a diagonal or full covariance") }
            kind = .fixed(mean: Float(mean), sigma: Float(spec["sigma"]?.doubleValue ?? 1))
        case "per_batch":
            kind = .perBatch
        default:
            throw RunError("unlearn.noise.covariance \(covariance) (estimated from the forget set) is not built yet; identity, isotropic and per_batch are")
        }
    }

    func sample(like x: Tensor<Float>, rng: inout Philox) -> Tensor<Float> {
        let z = Tensor<Float>.randn(x.shape, rng: &rng)
        var n: Tensor<Float>
        switch kind {
        case .fixed(let mean, let sigma):
            n = z * sigma + mean
        case .perBatch:
            // The authors' VQ-GAN code: one scalar mean and std over the whole forget batch.
            let mean = x.storage.reduce(0, +) / Float(x.count)
            let std = (x.storage.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Float(max(1, x.count - 1))).squareRoot()
            n = z * std + mean
        }
        if let (lo, hi) = clamp { n = n.clamped(lo, hi) }
        return n
    }
}
