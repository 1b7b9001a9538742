import LetheRuns
import LetheSpec
import LetheTensor

/// The unlearning objectives: the paper's ("ours") and its four baselines. Each gives, for one step,
/// a retain term, a forget term and the total the optimiser descends. Definitions:
/// `docs/METHOD.md` (the authors' (1 + label) weighting bug is not reproduced: every
/// forget term is weighted by alpha alone).
typealias UnlearningMethod = UnlearnSpec.Method

extension UnlearnSpec.Method {
    init(_ name: String) throws {
        guard let m = UnlearningMethod(rawValue: name) else {
            throw RunError(
                "unlearn.method \(name) is not one of \(Self.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        self = m
    }

    /// The baselines that fine-tune the whole model; ours and RANDOM ENCODER train the encoder only.
    var trainsWholeModel: Bool { self == .maxLoss || self == .noisyLabel || self == .retainLabel }

    /// The row name in the paper's tables.
    func tableRow(proxy: Bool) -> String {
        switch self {
        case .ours: return proxy ? "Ours (proxy D_R)" : "Ours"
        case .maxLoss: return "MAX LOSS"
        case .noisyLabel: return "NOISY LABEL"
        case .retainLabel: return "RETAIN LABEL"
        case .randomEncoder: return "RANDOM ENCODER"
        }
    }

    struct Terms { var retain, forget, total: Tensor<Float> }

    /// One step's terms. `draws` is split per term, and the student and the teacher get equal
    /// copies, so both see the same timesteps and noise (diffusion).
    func terms(
        student: any ModelFamily, teacher: any ModelFamily, retain xr: Tensor<Float>, forget xf: Tensor<Float>,
        noise n: Tensor<Float>, hidden: [Bool], draws: Philox, objective: Objective
    ) -> Terms {
        var r = draws.split("retain")
        var rTeacher = r
        var f = draws.split("forget")
        var fTeacher = f
        let alpha = objective.alpha
        switch self {
        case .ours, .randomEncoder:
            let target = GradMode.withoutGrad { teacher.embed(xr, hidden: hidden, rng: &rTeacher) }
            let retain = objective.distance(student.embed(xr, hidden: hidden, rng: &r), target)
            let forgetTarget: [Tensor<Float>] = GradMode.withoutGrad {
                if self == .ours {
                    // E0(T(n)): the original encoder's embedding of noise through the same mask.
                    return teacher.noiseEmbedding(
                        forget: xf, noise: n, hidden: hidden, target: objective.noiseTarget, rng: &fTeacher)
                }
                // A Gaussian with each teacher feature map's mean and std, drawn afresh each step.
                var g = draws.split("gaussian")
                return teacher.embed(xf, hidden: hidden, rng: &fTeacher).map { e in
                    let m = e.storage.reduce(0, +) / Float(e.count)
                    let s = (e.storage.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Float(max(1, e.count - 1))).squareRoot()
                    return Tensor<Float>.randn(e.shape, rng: &g) * s + m
                }
            }
            let forget = objective.distance(student.embed(xf, hidden: hidden, rng: &f), forgetTarget)
            return Terms(retain: retain, forget: forget, total: retain + forget * alpha)
        case .maxLoss:
            let retain = student.taskPrediction(xr, hidden: hidden, rng: &r).loss()
            // Ascend the I2I term only: ascending a VQ loss would push codes and encoder apart.
            let forget = student.taskPrediction(xf, hidden: hidden, rng: &f).loss(auxiliary: false)
            return Terms(retain: retain, forget: forget, total: retain - forget * alpha)
        case .noisyLabel:
            let retain = student.taskPrediction(xr, hidden: hidden, rng: &r).loss()
            let forget = student.noisyPrediction(forget: xf, noise: n, hidden: hidden, rng: &f).loss()
            return Terms(retain: retain, forget: forget, total: retain + forget * alpha)
        case .retainLabel:
            // The retain term distils to the frozen teacher's output for the same draws (both
            // authors' codebases), or regresses onto the model's own label (`ground_truth`).
            let retainPrediction = student.taskPrediction(xr, hidden: hidden, rng: &r)
            let retain: Tensor<Float>
            switch objective.retainTerm ?? .teacher {
            case .groundTruth:
                retain = retainPrediction.loss()
            case .teacher:
                var same = draws.split("retain")
                let teacherOutput = GradMode.withoutGrad {
                    teacher.taskPrediction(xr, hidden: hidden, rng: &same).asLabel
                }
                retain = retainPrediction.loss(label: teacherOutput)
            }
            // The forget images' outputs are regressed onto the teacher's outputs for the retain
            // images of the same batch (pairs up to the shorter batch).
            let k = min(xr.shape[0], xf.shape[0])
            let label = GradMode.withoutGrad {
                teacher.taskPrediction(xr.slice(axis: 0, 0..<k), hidden: hidden, rng: &rTeacher).asLabel
            }
            let forget = student.taskPrediction(xf.slice(axis: 0, 0..<k), hidden: hidden, rng: &f).loss(label: label)
            return Terms(retain: retain, forget: forget, total: retain + forget * alpha)
        }
    }
}
