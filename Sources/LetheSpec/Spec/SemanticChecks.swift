/// Checks beyond JSON Schema: what a spec means must make sense for its data and its model.
/// Every check appends to `diagnostics`; none stops at the first problem.
struct SemanticChecks {
    let doc: SpecDocument
    var spec: JSONValue
    var diagnostics: [Diagnostic] = []
    var warnings: [Diagnostic] = []

    private func value(_ pointer: String) -> JSONValue? {
        (try? JSONPointer(parsing: pointer)).flatMap { $0.resolve(in: spec) }
    }

    private mutating func error(_ message: String, at pointer: String, key: Bool = false) {
        diagnostics.append(doc.diagnostic(message, at: try! JSONPointer(parsing: pointer), key: key))
    }

    private mutating func warn(_ message: String, at pointer: String) {
        warnings.append(doc.diagnostic(message, at: try! JSONPointer(parsing: pointer), severity: .warning))
    }

    /// JCS cannot hash NaN or infinity, and no weight, rate or size means anything there.
    mutating func finiteNumbers(_ v: JSONValue, at path: JSONPointer = .root) {
        switch v {
        case .number(let d) where !d.isFinite:
            diagnostics.append(doc.diagnostic("must be a finite number; found \(d)", at: path))
        case .array(let items): for (i, x) in items.enumerated() { finiteNumbers(x, at: path.appending(i)) }
        case .object(let o): for (k, x) in o { finiteNumbers(x, at: path.appending(k)) }
        default: break
        }
    }

    /// Names a spec may still use from before a rename: each is refused with the new name, before the
    /// schema's plainer "not one of" speaks.
    static let renamed: [(pointer: String, old: JSONValue?, message: String)] = [
        (
            "/model/architecture", .string("vqgan"),
            "architecture vqgan was renamed vq_autoencoder (Lethe's convolutional autoencoder that completes the hole itself, with its section model.vq_autoencoder); the paper's VQ-GAN family is architecture: mage"
        ),
        ("/model/vqgan", nil, "model.vqgan was renamed model.vq_autoencoder (with architecture: vq_autoencoder)"),
        ("/unlearn/vqgan_embedding", nil, "unlearn.vqgan_embedding was renamed unlearn.vq_embedding"),
    ]

    /// Diagnostics for renamed names; true when there were any.
    mutating func renamedNames() -> Bool {
        var found = false
        for r in Self.renamed {
            guard let v = value(r.pointer), r.old == nil || v == r.old else { continue }
            error(r.message, at: r.pointer)
            found = true
        }
        return found
    }

    mutating func kindRequirements() {
        let kind = value("/kind")?.stringValue
        let hasOrigin = value("/model/checkpoint") != nil || value("/model/pretrain") != nil
        switch kind {
        case "unlearn", "evaluate":
            if !hasOrigin {
                error("a \(kind!) run needs the original model: set model.checkpoint or model.pretrain", at: "/model")
            }
            if kind == "unlearn" && value("/data/forget") == nil {
                error("an unlearn run needs data.forget", at: "/data")
            }
        case "pretrain":
            let mageTransformer =
                value("/model/architecture")?.stringValue == "mage"
                && value("/train/stage")?.stringValue == "transformer"
            if mageTransformer && !hasOrigin {
                error(
                    "the MAGE transformer stage trains over a frozen tokenizer: set model.pretrain to the tokenizer stage's spec (train.stage: tokenizer) or model.checkpoint to the tokenizer's weights",
                    at: "/model")
            } else if !mageTransformer && value("/model/pretrain") != nil {
                error(
                    "a pretrain run cannot depend on another pretrain run (only MAGE's transformer stage depends on its tokenizer stage); use model.checkpoint to start from weights",
                    at: "/model/pretrain")
            }
        default: break
        }
        if value("/unlearn/proxy_retain")?.boolValue == true && value("/data/proxy_retain") == nil {
            error("unlearn.proxy_retain is true but data.proxy_retain is not set", at: "/unlearn/proxy_retain")
        }
    }

    mutating func modelShapes() {
        let size = value("/data/image_size")?.intValue ?? 32
        switch value("/model/architecture")?.stringValue {
        case "mae":
            let p = value("/model/mae/patch_size")?.intValue ?? 1
            if size % p != 0 {
                error("image_size \(size) is not a multiple of patch_size \(p)", at: "/model/mae/patch_size")
            }
            headsDivide("/model/mae")
        case "vq_autoencoder":
            latentGrid("/model/vq_autoencoder", size: size)
        case "mage":
            latentGrid("/model/mage/tokenizer", size: size)
            headsDivide("/model/mage")
            if let lo = value("/model/mage/mask_ratio/min")?.doubleValue,
                let hi = value("/model/mage/mask_ratio/max")?.doubleValue, lo >= hi
            {
                error("mask_ratio min \(lo) must be below max \(hi)", at: "/model/mage/mask_ratio/min")
            }
        case "diffusion":
            let levels = value("/model/diffusion/channels")?.arrayValue?.count ?? 1
            if size % (1 << (levels - 1)) != 0 {
                error(
                    "image_size \(size) must be divisible by \(1 << (levels - 1)) for \(levels) UNet levels",
                    at: "/model/diffusion/channels")
            }
            let b0 = value("/model/diffusion/beta_start")?.doubleValue ?? 0
            let b1 = value("/model/diffusion/beta_end")?.doubleValue ?? 1
            if b0 >= b1 { error("beta_start \(b0) must be below beta_end \(b1)", at: "/model/diffusion/beta_start") }
            let t = value("/model/diffusion/timesteps")?.intValue ?? 1
            let s = value("/model/diffusion/sampling_steps")?.intValue ?? 1
            if s > t { error("sampling_steps \(s) exceeds timesteps \(t)", at: "/model/diffusion/sampling_steps") }
        default: break
        }
    }

    /// Both transformer widths of a ViT section are divisible by their head counts.
    mutating func headsDivide(_ section: String) {
        for (w, h) in [("width", "heads"), ("decoder_width", "decoder_heads")] {
            let width = value("\(section)/\(w)")?.intValue ?? 1
            let heads = value("\(section)/\(h)")?.intValue ?? 1
            if width % heads != 0 {
                error("\(w) \(width) is not divisible by \(h) \(heads)", at: "\(section)/\(h)")
            }
        }
    }

    /// A VQ encoder halves the image once per `channels` entry: the image size must allow it, and a
    /// given `latent_size` must be what it gives.
    mutating func latentGrid(_ section: String, size: Int) {
        let levels = value("\(section)/channels")?.arrayValue?.count ?? 1
        let factor = 1 << min(levels, 30)
        if size % factor != 0 {
            error(
                "the encoder halves the image \(levels) time(s) (one per channels entry), so image_size \(size) must be a multiple of \(factor)",
                at: "\(section)/channels")
        } else if let latent = value("\(section)/latent_size")?.intValue, size / factor != latent {
            error(
                "the encoder halves the image \(levels) time(s) (one per channels entry), so image_size \(size) gives a \(size / factor)x\(size / factor) latent grid, not latent_size \(latent)",
                at: "\(section)/latent_size")
        }
    }

    mutating func schedule() {
        let steps = value("/train/steps")?.intValue ?? 1
        if let w = value("/train/schedule/warmup_steps")?.intValue, w > steps {
            error("warmup_steps \(w) exceeds steps \(steps)", at: "/train/schedule/warmup_steps")
        }
        if let lr = value("/train/optimizer/lr")?.doubleValue, let floor = value("/train/schedule/min_lr")?.doubleValue,
            floor > lr
        {
            error("min_lr \(floor) is above lr \(lr)", at: "/train/schedule/min_lr")
        }
        if value("/train/optimizer/name")?.stringValue != "sgd",
            let m = value("/train/optimizer/momentum")?.doubleValue, m != 0
        {
            warn(
                "momentum applies to sgd only and is ignored by \(value("/train/optimizer/name")?.stringValue ?? "")",
                at: "/train/optimizer/momentum")
        }
    }

    /// Class ids in range, index files readable and in range, and the splits pairwise disjoint.
    mutating func splits(facts: DatasetFacts?, specDirectory: String) -> [Plan.Input] {
        var inputs: [Plan.Input] = []
        var sets: [(name: String, classes: Set<Int>?, indices: Set<Int>?)] = []
        for name in ["forget", "retain", "proxy_retain"] {
            guard let split = value("/data/\(name)") else { continue }
            if let classes = split["classes"]?.arrayValue?.compactMap(\.intValue) {
                if let count = facts?.classCount {
                    for (i, c) in classes.enumerated() where c >= count {
                        error(
                            "class \(c) does not exist; \(value("/data/dataset")?.stringValue ?? "the data set") has classes 0...\(count - 1)",
                            at: "/data/\(name)/classes/\(i)")
                    }
                }
                sets.append((name, Set(classes), nil))
            } else if let file = split["index_file"]?.stringValue {
                let path = FileSystem.resolve(file, relativeTo: specDirectory)
                guard FileSystem.exists(path, directory: false) else {
                    error("index file \(path) does not exist", at: "/data/\(name)/index_file")
                    continue
                }
                do {
                    let indices = try IndexFile.read(path)
                    if let n = facts?.trainCount, let bad = indices.first(where: { $0 >= n }) {
                        error(
                            "index file lists sample \(bad), but the training set has \(n) samples (0...\(n - 1))",
                            at: "/data/\(name)/index_file")
                    }
                    if indices.isEmpty { error("index file lists no samples", at: "/data/\(name)/index_file") }
                    sets.append((name, nil, Set(indices)))
                    if let digest = try? Digest.sha256(file: path) {
                        inputs.append(.init(role: "data.\(name).index_file", path: path, sha256: digest))
                    }
                } catch {
                    diagnostics.append(contentsOf: error.diagnostics)
                }
            }
        }
        for a in sets.indices {
            for b in sets.indices where b > a {
                let x = sets[a]
                let y = sets[b]
                if let cx = x.classes, let cy = y.classes, !cx.isDisjoint(with: cy) {
                    error(
                        "\(y.name) and \(x.name) share classes \(cx.intersection(cy).sorted()); the splits must be disjoint",
                        at: "/data/\(y.name)/classes")
                } else if let ix = x.indices, let iy = y.indices, !ix.isDisjoint(with: iy) {
                    let shared = ix.intersection(iy).sorted()
                    error(
                        "\(y.name) and \(x.name) share \(shared.count) sample(s) (first: \(shared.prefix(5).map(String.init).joined(separator: ", "))); the splits must be disjoint",
                        at: "/data/\(y.name)/index_file")
                } else if (x.classes == nil) != (y.classes == nil) {
                    warn(
                        "\(x.name) is given by \(x.classes == nil ? "index file" : "classes") and \(y.name) by \(y.classes == nil ? "index file" : "classes"); their disjointness is checked when the data is loaded",
                        at: "/data/\(y.name)")
                }
            }
        }
        return inputs
    }

    mutating func noise(channels: Int?) {
        guard let noise = value("/unlearn/noise") else { return }
        let size = value("/data/image_size")?.intValue ?? 32
        let n = channels.map { $0 * size * size }
        if let diagonal = noise["diagonal"]?.arrayValue, let n, diagonal.count != n {
            error(
                "diagonal has \(diagonal.count) variances; a \(channels!)x\(size)x\(size) image needs \(n)",
                at: "/unlearn/noise/diagonal")
        }
        if let rows = noise["matrix"]?.arrayValue {
            let m = rows.map { $0.arrayValue?.compactMap(\.doubleValue) ?? [] }
            if let n, m.count != n {
                error(
                    "matrix has \(m.count) rows; a \(channels!)x\(size)x\(size) image needs \(n)x\(n)",
                    at: "/unlearn/noise/matrix")
            }
            switch CovarianceCheck.check(m) {
            case .notSquare(let row, let length):
                error(
                    "matrix is not square: row \(row) has \(length) entries, not \(m.count)",
                    at: "/unlearn/noise/matrix/\(row)")
            case .asymmetric(let i, let j):
                error(
                    "matrix is not symmetric: [\(i)][\(j)] = \(m[i][j]) but [\(j)][\(i)] = \(m[j][i])",
                    at: "/unlearn/noise/matrix/\(i)/\(j)")
            case .notPSD(let pivot):
                error(
                    "matrix is not positive semi-definite (Cholesky fails at pivot \(pivot))",
                    at: "/unlearn/noise/matrix")
            case nil: break
            }
        }
        if let clamp = noise["clamp"]?.arrayValue?.compactMap(\.doubleValue), clamp.count == 2, clamp[0] >= clamp[1] {
            error("clamp range [\(clamp[0]), \(clamp[1])] is empty", at: "/unlearn/noise/clamp")
        }
    }
}
