import LetheModels
import LetheTensor

/// One unlearning step of the paper's objective on each reference model, for `lethe bench`:
/// batch 32 retain + 32 forget, 32x32 images, centre crop of 25%, Adam lr 1e-4 on the encoder,
/// a frozen teacher copy. `bench/torch/bench_steps.py` does exactly the same work in PyTorch.
enum ReferenceSteps {
    static let batch = 32, alpha: Float = 0.25

    struct Step {
        var name: String
        var parameters: Int
        /// The images one call of `run` completes (evaluation rows).
        var images = batch
        var run: () -> Void
    }

    /// 1 outside the centred square that hides 25% of the image, 0 inside: (1, 1, 32, 32).
    static func cropMask() -> Tensor<Float> {
        Tensor(
            (0..<1024).map { i in (8..<24).contains(i / 32) && (8..<24).contains(i % 32) ? 0 : 1 },
            shape: [1, 1, 32, 32])
    }

    static func images(_ rng: inout Philox) -> Tensor<Float> { Tensor.uniform([batch, 1, 32, 32], 0, 1, rng: &rng) }

    /// A student and a frozen teacher with the same initial weights (both from the "init" stream), and
    /// the generator for the data.
    static func studentAndTeacher<M: Module<Float>>(_ make: (inout Philox) -> M) -> (
        student: M, teacher: M, rng: Philox
    ) {
        let rng = Philox(seed: 0)
        var a = rng.split("init")
        var b = rng.split("init")
        let student = make(&a)
        let teacher = make(&b)
        teacher.setTrainable(false)
        return (student, teacher, rng.split("data"))
    }

    /// Freezes everything but `encoder`, and returns an Adam over the encoder.
    static func encoderOptimizer<M: Module<Float>>(_ model: M, encoder: [(path: String, tensor: Tensor<Float>)])
        -> Adam<Float>
    {
        model.setTrainable(false)
        for p in encoder { p.tensor.requiresGrad = true }
        return Adam(encoder.map(\.tensor), lr: 1e-4)
    }

    /// Every reference model's step, by the name `--model` matches.
    static var all: [(name: String, make: () -> Step)] {
        [
            ("MAE", mae), ("VQ autoencoder", vqAutoencoder), ("MAGE", mage), ("diffusion", diffusion),
        ]
    }

    static func mae() -> Step {
        var (student, teacher, rng) = studentAndTeacher { MAE<Float>(MAEConfig(), rng: &$0) }
        let (xr, xf, noise) = (images(&rng), images(&rng), images(&rng))
        let visible = visiblePatches
        var adam = encoderOptimizer(student, encoder: student.encoderParameters)
        return Step(name: "MAE", parameters: student.parameterCount) {
            adam.zeroGrad()
            let (tr, tf) = GradMode.withoutGrad {
                (teacher.encode(xr, visible: visible), teacher.encode(noise, visible: visible))
            }
            let loss =
                student.encode(xr, visible: visible).mseLoss(tr) + student.encode(xf, visible: visible).mseLoss(tf)
                * alpha
            loss.backward()
            adam.step()
        }
    }

    static func vqAutoencoder() -> Step {
        var (student, teacher, rng) = studentAndTeacher { VQGAN<Float>(VQGANConfig(), rng: &$0) }
        let mask = cropMask()
        let (xr, xf, noise) = (images(&rng) * mask, images(&rng) * mask, images(&rng) * mask)
        var adam = encoderOptimizer(student, encoder: student.encoderParameters)
        return Step(name: "VQ autoencoder", parameters: student.parameterCount) {
            adam.zeroGrad()
            let (tr, tf) = GradMode.withoutGrad { (teacher.encoder(xr), teacher.encoder(noise)) }
            let loss = student.encoder(xr).mseLoss(tr) + student.encoder(xf).mseLoss(tf) * alpha
            loss.backward()
            adam.step()
        }
    }

    /// MAGE: the frozen tokenizer's tokens of T(x_r), T(x_f) and T(n), then the encoder over the
    /// visible tokens (the hole's 4x4 of the 8x8 grid dropped).
    static func mage() -> Step {
        var (student, teacher, rng) = studentAndTeacher { MAGE<Float>(MAGEConfig(), rng: &$0) }
        let mask = cropMask()
        let (xr, xf, noise) = (images(&rng) * mask, images(&rng) * mask, images(&rng) * mask)
        let visible = visiblePatches
        var adam = encoderOptimizer(student, encoder: student.encoderParameters)
        return Step(name: "MAGE", parameters: student.parameterCount) {
            adam.zeroGrad()
            let (kr, kf, kn) = (teacher.tokenize(xr), teacher.tokenize(xf), teacher.tokenize(noise))
            let (tr, tf) = GradMode.withoutGrad {
                (teacher.encode(tokens: kr, visible: visible), teacher.encode(tokens: kn, visible: visible))
            }
            let loss =
                student.encode(tokens: kr, visible: visible).mseLoss(tr)
                + student.encode(tokens: kf, visible: visible).mseLoss(tf) * alpha
            loss.backward()
            adam.step()
        }
    }

    static func diffusion() -> Step {
        var (student, teacher, rng) = studentAndTeacher { UNet<Float>(DiffusionConfig(), rng: &$0) }
        let mask = cropMask()
        let (xr, xf, noise) = (images(&rng), images(&rng), images(&rng))
        // x_t for retain, forget, and the forget image with noise in its hole; conditions are T(x).
        let (xtr, xtf, xtn) = (images(&rng), images(&rng), xf * mask + noise * (1 - mask))
        let t = (0..<batch).map { _ in rng.int(below: 100) }
        var adam = encoderOptimizer(student, encoder: student.encoderParameters)
        func distance(_ a: [Tensor<Float>], _ b: [Tensor<Float>]) -> Tensor<Float> {
            zip(a.dropFirst(), b.dropFirst()).reduce(a[0].mseLoss(b[0])) { $0 + $1.0.mseLoss($1.1) }
        }
        return Step(name: "diffusion", parameters: student.parameterCount) {
            adam.zeroGrad()
            let (tr, tf) = GradMode.withoutGrad { () -> ([Tensor<Float>], [Tensor<Float>]) in
                let emb = teacher.timestepEmbedding(t)
                return (
                    teacher.encode(xtr, condition: xr * mask, emb: emb),
                    teacher.encode(xtn, condition: xf * mask, emb: emb)
                )
            }
            let emb = student.timestepEmbedding(t)
            let loss =
                distance(student.encode(xtr, condition: xr * mask, emb: emb), tr)
                + distance(student.encode(xtf, condition: xf * mask, emb: emb), tf) * alpha
            loss.backward()
            adam.step()
        }
    }
}
