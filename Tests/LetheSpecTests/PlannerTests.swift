import Foundation
import Testing
@testable import LetheSpec

@Suite struct PlannerTests {
    static let unlearnSpec = """
        version: 1
        kind: unlearn
        data:
          dataset: image-folder
          root: data
          forget: {classes: [0]}
        model:
          architecture: mae
          checkpoint: w.safetensors
        unlearn:
          method: ours
        """

    func setUp() throws -> (TempDir, Planner) {
        let dir = try TempDir()
        _ = try dir.imageFolder(classes: 4)
        try dir.write("w.safetensors", [1, 2, 3])
        return (dir, Planner(workingDirectory: dir.path))
    }

    func errors(_ text: String, _ dir: TempDir, _ planner: Planner) -> [Diagnostic] {
        do {
            _ = try planner.plan(text: text, in: dir)
            return []
        } catch let e as SpecError {
            return e.diagnostics
        } catch {
            return [Diagnostic("\(error)", at: .root, mark: nil)]
        }
    }

    @Test func schemaFilesMatchTheEmbeddedCopies() throws {
        let onDisk = try FileManager.default.contentsOfDirectory(atPath: Repo.path("schemas")).filter {
            $0.hasSuffix(".schema.json")
        }.sorted()
        #expect(onDisk == EmbeddedSchemas.files.map(\.name).sorted(), "run `make schemas`")
        for file in EmbeddedSchemas.files {
            let text = try String(contentsOfFile: Repo.path("schemas/\(file.name)"), encoding: .utf8)
            #expect(
                text.trimmingCharacters(in: .whitespacesAndNewlines) == file.text,
                "\(file.name) drifted from the binary; run `make schemas`")
            _ = try JSONParser.parse(file.text, file: file.name)
        }
    }

    @Test func retainDefaultsToEveryOtherClassAndTheCheckpointIsHashed() throws {
        let (dir, planner) = try setUp()
        defer { dir.remove() }
        let plan = try planner.plan(text: Self.unlearnSpec, in: dir)
        #expect(plan.resolved["data"]?["retain"]?["classes"] == .array([.integer(1), .integer(2), .integer(3)]))
        #expect(
            plan.inputs.contains { $0.role == "model.checkpoint" && $0.sha256 == Digest.sha256([1, 2, 3] as [UInt8]) })
        let spelled = try planner.plan(
            text: Self.unlearnSpec.replacing(
                "forget: {classes: [0]}", with: "forget: {classes: [0]}\n  retain: {classes: [1, 2, 3]}"), in: dir,
            name: "b.yaml")
        #expect(spelled.configHash == plan.configHash)
        #expect(plan.stages.map(\.name) == ["classifier", "unlearn"])
    }

    @Test func noiseDefaultsFollowTheCovarianceKind() throws {
        let (dir, planner) = try setUp()
        defer { dir.remove() }
        let iso = try planner.plan(text: Self.unlearnSpec + "\n  noise: {covariance: isotropic}", in: dir)
        #expect(iso.resolved["unlearn"]?["noise"]?["sigma"] == .number(1))
        #expect(iso.resolved["unlearn"]?["noise"]?["mean"] == .integer(0))
        let batch = try planner.plan(
            text: Self.unlearnSpec + "\n  noise: {covariance: per_batch}", in: dir, name: "b.yaml")
        #expect(batch.resolved["unlearn"]?["noise"]?["clamp"] == .array([.integer(0), .integer(1)]))
        #expect(batch.resolved["unlearn"]?["noise"]?["mean"] == .string("estimate"))
        let d = errors(Self.unlearnSpec + "\n  noise: {covariance: identity, sigma: 2}", dir, planner)
        #expect(
            d.contains {
                $0.pointer == JSONPointer(["unlearn", "noise", "sigma"]) && $0.message.contains("not allowed")
            })
    }

    @Test func explicitCovarianceMustBeSymmetricPSDOfTheRightShape() throws {
        let (dir, planner) = try setUp()
        defer { dir.remove() }
        let spec = Self.unlearnSpec.replacing("root: data", with: "root: data\n  image_size: 8")
        #expect(CovarianceCheck.check([[2, 1], [1, 2]]) == nil)
        #expect(CovarianceCheck.check([[1, 0], [0, 0]]) == nil, "semi-definite is fine")
        #expect(CovarianceCheck.check([[1, 2], [2, 1]]) == .notPSD(pivot: 1))
        #expect(CovarianceCheck.check([[1, 2], [0, 1]]) == .asymmetric(1, 0))
        #expect(CovarianceCheck.check([[1, 0], [0]]) == .notSquare(row: 1, length: 1))
        let d = errors(spec + "\n  noise: {covariance: full, matrix: [[1, 2], [2, 1]]}", dir, planner)
        #expect(d.contains { $0.message.contains("needs 64x64") })
        #expect(d.contains { $0.message.contains("not positive semi-definite") })
        let diag = errors(spec + "\n  noise: {covariance: diagonal, diagonal: [1, 2, 3]}", dir, planner)
        #expect(
            diag.contains {
                $0.pointer == JSONPointer(["unlearn", "noise", "diagonal"]) && $0.message.contains("needs 64")
            })
    }

    @Test func indexFileSplitsAreReadCheckedAndHashed() throws {
        let (dir, planner) = try setUp()
        defer { dir.remove() }
        try dir.write("forget.txt", "# forget these\n0\n1\n")
        try dir.write("retain.txt", "2\n3\n1\n")
        let spec = Self.unlearnSpec.replacing(
            "forget: {classes: [0]}", with: "forget: {index_file: forget.txt}\n  retain: {index_file: retain.txt}")
        let d = errors(spec, dir, planner)
        #expect(d.count == 1)
        #expect(d.first?.message.contains("share 1 sample(s) (first: 1)") == true)
        try dir.write("retain.txt", "2\n3\nseven\n")
        let bad = errors(spec, dir, planner)
        #expect(bad.first?.mark == SourceMark(file: dir.path + "/retain.txt", line: 3, column: 1))
        try dir.write("retain.txt", "2\n3\n99\n")
        #expect(errors(spec, dir, planner).first?.message.contains("the training set has 8 samples") == true)
        try dir.write("retain.txt", "2\n3\n")
        let plan = try planner.plan(text: spec, in: dir)
        #expect(
            plan.inputs.map(\.role).sorted() == [
                "data", "data.forget.index_file", "data.retain.index_file", "model.checkpoint",
            ])
        try dir.write("retain.txt", "2\n4\n")
        #expect(try planner.plan(text: spec, in: dir).configHash != plan.configHash)
    }

    @Test func unlearnNeedsItsOriginalModelAndForgetSet() throws {
        let (dir, planner) = try setUp()
        defer { dir.remove() }
        let d = errors(
            Self.unlearnSpec.replacing("  checkpoint: w.safetensors\n", with: "").replacing(
                "  forget: {classes: [0]}\n", with: ""), dir, planner)
        #expect(d.contains { $0.message.contains("needs the original model") })
        #expect(d.contains { $0.message.contains("needs data.forget") })
    }

    @Test func pretrainDependenciesArePlannedAndCyclesRefused() throws {
        let (dir, planner) = try setUp()
        defer { dir.remove() }
        try dir.write(
            "pre.yaml",
            "version: 1\nkind: pretrain\ndata: {dataset: image-folder, root: data}\nmodel: {architecture: mae}\n")
        let spec = Self.unlearnSpec.replacing("checkpoint: w.safetensors", with: "pretrain: pre.yaml")
        let plan = try planner.plan(text: spec, in: dir)
        #expect(plan.stages.map(\.name) == ["pretrain", "classifier", "unlearn"])
        #expect(plan.identity["spec"]?["model"]?["pretrain"] == .string("config:" + plan.dependencies[0].configHash))
        let elsewhere = try planner.plan(
            text: spec, in: dir, overrides: [try Override(parsing: "output.dir=elsewhere")])
        #expect(
            elsewhere.dependencies[0].runDirectory == dir.path + "/elsewhere/" + plan.dependencies[0].configHash,
            "dependencies share the parent's runs folder")
        try dir.write(
            "pre.yaml",
            "version: 1\nkind: pretrain\ndata: {dataset: image-folder, root: data}\nmodel: {architecture: mae, mae: {width: 32}}\n"
        )
        #expect(errors(spec, dir, planner).first?.message.contains("differs at model.mae.width") == true)
        try dir.write(
            "pre.yaml",
            "version: 1\nkind: unlearn\nunlearn: {method: ours}\ndata: {dataset: image-folder, root: data, forget: {classes: [1]}}\nmodel: {architecture: mae, pretrain: spec.yaml}\n"
        )
        let cyc = errors(spec, dir, planner)
        #expect(cyc.contains { $0.description.contains("cycle") }, "\(cyc)")
    }

    @Test func modelShapesAreChecked() throws {
        let (dir, planner) = try setUp()
        defer { dir.remove() }
        let d = errors(
            Self.unlearnSpec.replacing(
                "architecture: mae", with: "architecture: mae\n  mae: {patch_size: 5, width: 130, heads: 4}"), dir,
            planner)
        #expect(d.contains { $0.message.contains("not a multiple of patch_size 5") })
        #expect(d.contains { $0.message.contains("width 130 is not divisible by heads 4") })
        // The latent grid follows from the image size and the levels unless given; a given one must match.
        for (arch, section) in [
            ("vq_autoencoder", ["model", "vq_autoencoder"]), ("mage", ["model", "mage", "tokenizer"]),
        ] {
            func spec(_ levels: String) -> String {
                let yaml = section.count == 2 ? "\(arch): \(levels)" : "\(arch): {tokenizer: \(levels)}"
                return Self.unlearnSpec.replacing("architecture: mae", with: "architecture: \(arch)\n  " + yaml)
            }
            let derived = spec("{channels: [8, 16, 32]}")
            #expect(errors(derived, dir, planner).isEmpty, "\(errors(derived, dir, planner))")
            let resolved = try planner.plan(text: derived, in: dir).resolved
            #expect(section.reduce(resolved) { $0?[$1] }?["latent_size"] == .integer(4))
            let v = errors(spec("{channels: [8, 16, 32], latent_size: 8}"), dir, planner)
            #expect(
                v.contains {
                    $0.pointer == JSONPointer(section + ["latent_size"])
                        && $0.message.contains("gives a 4x4 latent grid, not latent_size 8")
                }, "\(v)")
        }
        let m = errors(
            Self.unlearnSpec.replacing(
                "architecture: mae",
                with: "architecture: mage\n  mage: {width: 130, decoder_heads: 3, mask_ratio: {min: 0.8, max: 0.6}}"),
            dir, planner)
        #expect(m.contains { $0.pointer == JSONPointer(["model", "mage", "heads"]) && $0.message.contains("130") })
        #expect(m.contains { $0.pointer == JSONPointer(["model", "mage", "decoder_heads"]) })
        #expect(m.contains { $0.pointer == JSONPointer(["model", "mage", "mask_ratio", "min"]) })
    }

    /// Names from before the VQ autoencoder's rename are refused with the new name, at their place.
    @Test func renamedNamesSayTheirNewNames() throws {
        let (dir, planner) = try setUp()
        defer { dir.remove() }
        let d = errors(
            Self.unlearnSpec.replacing("architecture: mae", with: "architecture: vqgan\n  vqgan: {}")
                + "\n  vqgan_embedding: quantized", dir, planner)
        #expect(
            d.contains {
                $0.pointer == JSONPointer(["model", "architecture"]) && $0.message.contains("vq_autoencoder")
                    && $0.message.contains("mage") && $0.mark?.line == 8
            }, "\(d)")
        #expect(d.contains { $0.pointer == JSONPointer(["model", "vqgan"]) && $0.message.contains("vq_autoencoder") })
        #expect(
            d.contains {
                $0.pointer == JSONPointer(["unlearn", "vqgan_embedding"]) && $0.message.contains("vq_embedding")
            })
    }

    @Test func otherArchitecturesKeysAreRefused() throws {
        let (dir, planner) = try setUp()
        defer { dir.remove() }
        let d = errors(
            Self.unlearnSpec.replacing("architecture: mae", with: "architecture: mae\n  mage: {}"), dir, planner)
        #expect(
            d.contains {
                $0.pointer == JSONPointer(["model", "mage"]) && $0.message.contains("'mage' is not allowed here")
            })
    }
}

@Suite struct NpyDatasetPlanTests {
    @Test func anNpyFolderNeedsItsTrainingArraysAndIsHashed() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        try FileManager.default.createDirectory(atPath: dir.path + "/arrays", withIntermediateDirectories: true)
        let spec = """
            version: 1
            kind: pretrain
            data: {dataset: npy, root: arrays}
            model: {architecture: mae}
            """
        #expect { try Planner(workingDirectory: dir.path).plan(text: spec, in: dir) } throws: {
            "\($0)".contains("x_train.npy does not exist")
        }
        try dir.write("arrays/x_train.npy", [1, 2])
        try dir.write("arrays/y_train.npy", [3])
        let plan = try Planner(workingDirectory: dir.path).plan(text: spec, in: dir)
        #expect(plan.inputs.contains { $0.role == "data" })
        #expect(plan.resolved["data"]?["test_fraction"] == .number(0.1))
    }
}

/// The planner refuses, with the field to change, what would crash or hang a run later.
@Suite struct PlannerHardeningTests {
    func errors(_ text: String, _ dir: TempDir) -> [Diagnostic] {
        do {
            _ = try Planner(workingDirectory: dir.path).plan(text: text, in: dir)
            return []
        } catch let e as SpecError {
            return e.diagnostics
        } catch {
            return [Diagnostic("\(error)", at: .root, mark: nil)]
        }
    }

    func spec(_ extra: String) -> String {
        """
        version: 1
        kind: pretrain
        data: {dataset: image-folder, root: data}
        model: {architecture: mae}
        \(extra)
        """
    }

    @Test func runsThatCannotFitInMemoryAreRefusedAtPlanTime() throws {
        let dir = try TempDir()
        _ = try dir.imageFolder(classes: 2)
        #expect(errors(spec("train: {batch_size: 32}"), dir).isEmpty)
        let batch = errors(spec("train: {batch_size: 100000000000}"), dir)
        #expect(batch.count == 1 && batch[0].pointer.description == "/train/batch_size", "\(batch)")
        #expect(batch.first?.message.contains("more than this machine's") == true)
        let width = errors(
            spec("model: {architecture: mae, mae: {width: 1000000000}}").replacingOccurrences(
                of: "model: {architecture: mae}\n", with: ""), dir)
        #expect(width.first?.pointer.description == "/model/mae/width", "\(width)")
        let estimate = MemoryEstimate.of(
            try JSONParser.parse(#"{"kind": "unlearn", "model": {"architecture": "mae"}}"#), channels: 1,
            trainImages: 60_000)
        #expect(estimate.total > 100e6 && estimate.total < 2e9, "the reference MAE's unlearning step: \(estimate)")
    }

    @Test func checkpointsThatAreNotRegularFilesAndBothSourcesAreClearErrors() throws {
        let dir = try TempDir()
        _ = try dir.imageFolder(classes: 2)
        let device = errors(
            spec("").replacingOccurrences(
                of: "model: {architecture: mae}", with: "model: {architecture: mae, checkpoint: /dev/zero}"), dir)
        #expect(device.map(\.message) == ["checkpoint /dev/zero is a character device, not a regular file"])
        try dir.write("w.safetensors", [1])
        try FileManager.default.createDirectory(atPath: dir.path + "/pre.yaml", withIntermediateDirectories: true)
        let both = errors(
            spec("").replacingOccurrences(
                of: "model: {architecture: mae}",
                with: "model: {architecture: mae, checkpoint: w.safetensors, pretrain: pre.yaml}"), dir)
        #expect(
            both.map(\.message) == [
                "set either model.checkpoint (a weights file) or model.pretrain (a pretrain spec), not both"
            ])
        let folder = errors(
            spec("").replacingOccurrences(
                of: "model: {architecture: mae}", with: "model: {architecture: mae, pretrain: pre.yaml}"), dir)
        #expect(folder.contains { $0.message.hasSuffix("pre.yaml is a directory, expected a file") }, "\(folder)")
        let data = errors(
            spec("").replacingOccurrences(
                of: "dataset: image-folder, root: data", with: "dataset: npz, root: /dev/zero"), dir)
        #expect(data.map(\.message) == ["/dev/zero is a character device, not a regular file"])
    }

    @Test func integersOutOfRangeAreErrorsWhereverTheyComeFrom() throws {
        let dir = try TempDir()
        _ = try dir.imageFolder(classes: 2)
        let float = errors(spec("train: {steps: 1.0e30}"), dir)
        #expect(
            float.map(\.pointer.description) == ["/train/steps"]
                && float.first?.message.contains("out of range") == true)
        let literal = errors(spec("seed: 0\ntrain: {steps: 1180591620717411303424}"), dir)
        #expect(literal.first?.message.contains("out of range") == true)
    }
}

/// MAGE's stages chain one way: tokenizer <- transformer <- unlearn/evaluate, each checked at plan time.
@Suite struct MAGEStagePlanTests {
    static func spec(kind: String, stage: String? = nil, pretrain: String? = nil, tokenizer: String = "{}") -> String {
        var text = """
            version: 1
            kind: \(kind)
            data:
              dataset: image-folder
              root: data
            """
        if kind == "unlearn" { text += "\n  forget: {classes: [0]}" }
        text += "\nmodel:\n  architecture: mage\n  mage: {tokenizer: \(tokenizer)}"
        if let pretrain { text += "\n  pretrain: \(pretrain)" }
        if let stage { text += "\ntrain: {stage: \(stage)}" }
        if kind == "unlearn" { text += "\nunlearn: {method: ours}" }
        return text
    }

    func errors(_ text: String, _ dir: TempDir, name: String = "spec.yaml") -> [Diagnostic] {
        do {
            _ = try Planner(workingDirectory: dir.path).plan(text: text, in: dir, name: name)
            return []
        } catch let e as SpecError {
            return e.diagnostics
        } catch {
            return [Diagnostic("\(error)", at: .root, mark: nil)]
        }
    }

    @Test func theStagesChainTokenizerTransformerRun() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        _ = try dir.imageFolder(classes: 4)
        try dir.write("tok.yaml", Self.spec(kind: "pretrain", stage: "tokenizer"))
        try dir.write("pre.yaml", Self.spec(kind: "pretrain", pretrain: "tok.yaml"))  // stage defaults to transformer
        let plan = try Planner(workingDirectory: dir.path).plan(
            text: Self.spec(kind: "unlearn", pretrain: "pre.yaml"), in: dir)
        #expect(plan.dependencies.first?.spec.train.stage == .transformer)
        #expect(plan.dependencies.first?.dependencies.first?.spec.train.stage == .tokenizer)
        #expect(plan.spec.train.stage == nil)
        // A tokenizer of another shape changes the identity of every stage after it.
        try dir.write("tok2.yaml", Self.spec(kind: "pretrain", stage: "tokenizer", tokenizer: "{codebook_size: 64}"))
        try dir.write("pre2.yaml", Self.spec(kind: "pretrain", pretrain: "tok2.yaml", tokenizer: "{codebook_size: 64}"))
        let other = try Planner(workingDirectory: dir.path).plan(
            text: Self.spec(kind: "unlearn", pretrain: "pre2.yaml", tokenizer: "{codebook_size: 64}"), in: dir)
        #expect(other.configHash != plan.configHash)
    }

    @Test func aWrongLinkIsRefusedAtModelPretrain() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        _ = try dir.imageFolder(classes: 4)
        try dir.write("tok.yaml", Self.spec(kind: "pretrain", stage: "tokenizer"))
        try dir.write("pre.yaml", Self.spec(kind: "pretrain", pretrain: "tok.yaml"))
        let pointer = JSONPointer(["model", "pretrain"])
        // An unlearn run naming the tokenizer stage.
        let a = errors(Self.spec(kind: "unlearn", pretrain: "tok.yaml"), dir)
        #expect(a.contains { $0.pointer == pointer && $0.message.contains("needs the transformer stage") }, "\(a)")
        // A transformer stage naming a transformer stage.
        let b = errors(Self.spec(kind: "pretrain", pretrain: "pre.yaml"), dir)
        #expect(b.contains { $0.pointer == pointer && $0.message.contains("must name the tokenizer stage") }, "\(b)")
        // A tokenizer stage cannot depend on anything; a transformer stage needs its tokenizer.
        let c = errors(Self.spec(kind: "pretrain", stage: "tokenizer", pretrain: "tok.yaml"), dir)
        #expect(c.contains { $0.pointer == pointer }, "\(c)")
        let d = errors(Self.spec(kind: "pretrain"), dir)
        #expect(d.contains { $0.pointer == JSONPointer(["model"]) && $0.message.contains("tokenizer") }, "\(d)")
        // A tokenizer that does not fit: the transformer stage's tokenizer section differs.
        let e = errors(Self.spec(kind: "pretrain", pretrain: "tok.yaml", tokenizer: "{codebook_dim: 16}"), dir)
        #expect(
            e.contains { $0.pointer == pointer && $0.message.contains("model.mage.tokenizer.codebook_dim") }, "\(e)")
        // train.stage belongs to MAGE pretraining alone.
        let f = errors(
            Self.spec(kind: "unlearn", stage: "transformer", pretrain: "pre.yaml"), dir)
        #expect(f.contains { $0.pointer == JSONPointer(["train", "stage"]) }, "\(f)")
    }
}
