import Foundation
import Testing
@testable import LetheSpec

/// The config hash is a function of meaning: rewrites that keep the meaning keep it, any change
/// of a value (or of an input file) changes it.
@Suite struct ConfigHashTests {
    static let base = """
        version: 1
        kind: pretrain
        name: base
        seed: 3
        data:
          dataset: image-folder
          root: data
          image_size: 32
        task:
          mask: outpaint
          ratio: 0.25
        model:
          architecture: mae
          mae:
            width: 64
        train:
          steps: 10
          optimizer:
            name: adam
            lr: 1e-4
        """

    static let sameMeaning: [(String, String)] = [
        (
            "comments",
            """
            # a comment
            version: 1   # trailing
            kind: pretrain
            name: base
            seed: 3
            data: {dataset: image-folder, root: data, image_size: 32}   # flow style
            task: {mask: outpaint, ratio: 0.25}
            model:
              architecture: mae
              mae: {width: 64}
            train: {steps: 10, optimizer: {name: adam, lr: 0.0001}}
            """
        ),
        (
            "key order and number spelling",
            """
            train:
              optimizer:
                lr: 1.0e-04
                name: adam
              steps: 10
            model:
              mae:
                width: 64
              architecture: mae
            task:
              ratio: 2.5e-1
              mask: outpaint
            data:
              image_size: 32
              root: ./data
              dataset: image-folder
            seed: 3
            kind: pretrain
            version: 1
            """
        ),
        (
            "defaults spelled out, labels changed",
            """
            version: 1
            kind: pretrain
            name: renamed
            description: the same run under another name
            seed: 3
            data:
              dataset: image-folder
              root: data
              image_size: 32
              per_class_limit: null
            task:
              mask: outpaint
              ratio: 0.25
            model:
              architecture: mae
              mae:
                width: 64
                patch_size: 4
                depth: 4
                heads: 4
                mlp_ratio: 4.0
                decoder_width: 64
                decoder_depth: 2
                decoder_heads: 4
                pretrain_mask_ratio: 0.75
            train:
              steps: 10
              batch_size: 32
              optimizer:
                name: adam
                lr: 1e-4
                betas: [0.9, 0.999]
                eps: 1e-8
                weight_decay: 0
              schedule: {kind: constant, warmup_steps: 0, min_lr: 0}
              grad_clip: ~
            evaluate:
              test_per_class: null
            numerics: {mode: fast}
            output: {dir: elsewhere}
            """
        ),
    ]

    static let changedMeaning: [(String, String, String)] = [
        ("seed", "seed: 3", "seed: 4"),
        ("learning rate", "lr: 1e-4", "lr: 2e-4"),
        ("mask", "mask: outpaint", "mask: center_crop"),
        ("model width", "width: 64", "width: 32"),
        ("steps", "steps: 10", "steps: 11"),
        ("ratio", "ratio: 0.25", "ratio: 0.2500001"),
    ]

    @Test func rewritesThatKeepTheMeaningKeepTheHash() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        _ = try dir.imageFolder()
        let planner = Planner(workingDirectory: dir.path)
        let reference = try planner.plan(text: Self.base, in: dir).configHash
        for (what, text) in Self.sameMeaning {
            #expect(try planner.plan(text: text, in: dir).configHash == reference, "\(what)")
        }
        // How often the resume state is saved does not change what the run computes.
        for every in ["0", "1", "500"] {
            let text = Self.base.replacing("  steps: 10\n", with: "  steps: 10\n  checkpoint_every: \(every)\n")
            #expect(text != Self.base)
            #expect(try planner.plan(text: text, in: dir).configHash == reference, "checkpoint_every: \(every)")
        }
    }

    @Test func anyChangeOfValueChangesTheHash() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        _ = try dir.imageFolder()
        let planner = Planner(workingDirectory: dir.path)
        let reference = try planner.plan(text: Self.base, in: dir).configHash
        var seen: Set<String> = [reference]
        for (what, from, to) in Self.changedMeaning {
            #expect(Self.base.contains(from))
            let hash = try planner.plan(text: Self.base.replacing(from, with: to), in: dir).configHash
            #expect(seen.insert(hash).inserted, "\(what) did not change the hash")
        }
    }

    @Test func differentInputFilesNeverShareAHash() throws {
        let a = try TempDir()
        let b = try TempDir()
        defer {
            a.remove()
            b.remove()
        }
        _ = try a.imageFolder(salt: 0)
        _ = try b.imageFolder(salt: 1)
        let ha = try Planner(workingDirectory: a.path).plan(text: Self.base, in: a)
        let hb = try Planner(workingDirectory: b.path).plan(text: Self.base, in: b)
        #expect(ha.configHash != hb.configHash)
        #expect(ha.inputs.first { $0.role == "data" }?.sha256 != hb.inputs.first { $0.role == "data" }?.sha256)
    }

    @Test func theSameContentElsewhereSharesTheHash() throws {
        let a = try TempDir()
        let b = try TempDir()
        defer {
            a.remove()
            b.remove()
        }
        _ = try a.imageFolder()
        _ = try b.imageFolder()
        let ha = try Planner(workingDirectory: a.path).plan(text: Self.base, in: a).configHash
        let hb = try Planner(workingDirectory: b.path).plan(text: Self.base, in: b).configHash
        #expect(ha == hb)
    }

    @Test func overridesAreValidatedAndChangeTheHash() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        _ = try dir.imageFolder()
        let planner = Planner(workingDirectory: dir.path)
        let reference = try planner.plan(text: Self.base, in: dir)
        let overridden = try planner.plan(
            text: Self.base, in: dir, overrides: [try Override(parsing: "train.optimizer.lr=2e-4")])
        let edited = try planner.plan(
            text: Self.base.replacing("lr: 1e-4", with: "lr: 2e-4"), in: dir, name: "edited.yaml")
        #expect(overridden.configHash != reference.configHash)
        #expect(overridden.configHash == edited.configHash)
        #expect {
            try planner.plan(text: Self.base, in: dir, overrides: [try Override(parsing: "train.optimizer.lr=-1")])
        } throws: { error in
            let d = (error as! SpecError).diagnostics
            return d.count == 1 && d[0].pointer == JSONPointer(["train", "optimizer", "lr"])
                && d[0].mark?.file == "--set train.optimizer.lr=-1"
        }
    }

    @Test func identityLeavesOutLabelsAndReplacesPathsByDigests() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        _ = try dir.imageFolder()
        let plan = try Planner(workingDirectory: dir.path).plan(text: Self.base, in: dir)
        let spec = plan.identity["spec"]!
        #expect(spec["name"] == nil)
        #expect(spec["output"] == nil)
        #expect(spec["data"]?["root"]?.stringValue?.hasPrefix("sha256:") == true)
        #expect(plan.identity["lethe"] == .string(LetheVersion.current))
        #expect(plan.resolved["data"]?["root"] == .string(dir.path + "/data"))
        #expect(plan.configHash == Digest.sha256(try CanonicalJSON.string(plan.identity)))
    }
}

/// The shipped configs' hashes, pinned: a change of the typed-spec boundary, of a default or of an
/// identity must not move them unless it is deliberate, and then this list says so. `before`: the
/// hashes from issue 15's method and evaluation settings (2026-12-03) until issue 16, under today's
/// file names (`vqgan-*` became `vq-autoencoder-*`); `hashes`: since the VQ autoencoder's rename
/// (`architecture: vq_autoencoder`, `unlearn.vq_embedding`; its `generator` field is gone), MAGE's
/// entry (`configs/mage-*`, new) and longer pretraining budgets (VQ autoencoder 800 steps, diffusion
/// 3,000). The MAE configs and the feature classifier's identity did not move.
@Suite struct ShippedConfigHashTests {
    static let before: [String: String] = [
        "diffusion-max-loss.yaml": "44d670cf9b23bf218e4294eb3e59f42a5ce61fa2e8a74eae56e547fa1d22cbe5",
        "diffusion-noisy-label.yaml": "6fbd05b4a61f2d1672f8c8b098c711b17dda8da2037c0e1fc689d720258afd8f",
        "diffusion-ours-proxy.yaml": "057b7d76878496a13bccc4e134ad10a8919587510a995f4cfce1b35dbc141a58",
        "diffusion-ours.yaml": "85f825b166db52981a4e46dde4a3158e7b204a93b8d4d43048625a6b24e295c7",
        "diffusion-pretrain.yaml": "0438199dbb49be9fd51005ea2f13fd7bc2d1f009fc1033321b4e9091e8dd5e6b",
        "diffusion-random-encoder.yaml": "b3e25f4d0745c737bccac5eeedcee156dfafca2bf4d5654476c7b307cee00309",
        "diffusion-retain-label.yaml": "65f50e94cae9f44cefc6ba0fe615fb13dc0d6e8e1d0e0aceda0c2f4891b6e8f5",
        "mae-evaluate.yaml": "9339e354a1f5f94aa1ba75642a8101bbdb834c7794837de7e35e870f80be6e8a",
        "mae-max-loss.yaml": "e743bff5fdacf83790bd6bb1fde3f1051c40229988d41a5fe7db9ca4723b98a3",
        "mae-noisy-label.yaml": "c6317a1303424ee0d873edb72d3cb951aabf525770ba3b2a1f3f94c488aff290",
        "mae-ours-proxy.yaml": "49d70d6029925f1027c7c9cf732472777b6b058b718fda9b1912af39d926a452",
        "mae-ours.yaml": "9842449eb66ac361048435bb885f47d1c75784a8fbf27e766b3030d4ad25cfa5",
        "mae-pretrain.yaml": "c63370aca0481f05aa4d8c1e0b28bee02e82902bf24472773cfbe9236cca4904",
        "mae-random-encoder.yaml": "ac6885d835208bae50c79ded4dfea01a108471a67dfdbd387ad7c9ee5bd9419d",
        "mae-retain-label.yaml": "83fb88cf3a9c4c5d9829db40a0f0d6c31dedeb869916d4c14efbdced754fa39e",
        "vq-autoencoder-max-loss.yaml": "98593a340b0e015578ef31ba3451a75fe019c920ffa0752e66ba4b52c83c5bde",
        "vq-autoencoder-noisy-label.yaml": "138ef70daffc8d2a8c7eb8c10b696a364a1f9f01cb1639df7047f163acfd3463",
        "vq-autoencoder-ours-proxy.yaml": "57418b10ad4ba47b78333680b58de85ad1347b89dc1f5f7db2469459b7ff7dfe",
        "vq-autoencoder-ours.yaml": "993096b37f2bcade8b6b1930321061410c5ead2f085153b420be0402bb9def6f",
        "vq-autoencoder-pretrain.yaml": "009ef55f725443133650428b26479fa8471f477e5b41d8b00b77bbdf0ad3f345",
        "vq-autoencoder-random-encoder.yaml": "78be20487b5e76753ae439ae1f9e053937d13a9bca257fcb5e4d43dad0f12ff5",
        "vq-autoencoder-retain-label.yaml": "9511b3e79e1e47d3a64b9bec466f4b211259f39f31a1fdbcb3892b08bda40cfe",
    ]
    static let hashes: [String: String] = [
        "diffusion-max-loss.yaml": "fde57a79fc0e0fcbb10e2e4304e86ae2b4190612b1433563b2bd469c5194c74d",
        "diffusion-noisy-label.yaml": "bc4083aac08a8d173e2cdb60f6c1c5142d98af09d7a74ed67811ef9e1cc67422",
        "diffusion-ours-proxy.yaml": "e9cf261432b1452b57af2707b0659c629eab60a8c11d6390fba95bfdcfbd36c2",
        "diffusion-ours.yaml": "d9eeef890c072016fe626afe01630e48949e24ca06e1fa62d61b098583eeca80",
        "diffusion-pretrain.yaml": "5814e79c50609f37ba1ab5b293a2dc43f74746c275c8059b0d9f3c3a623a9da5",
        "diffusion-random-encoder.yaml": "0eeca0a9af66b9f473fc1be884d2aabcee9ff04bf394fe44803cf748180d7367",
        "diffusion-retain-label.yaml": "78dfd179ecef887e48c3491162ecd2de77b52f867b7b224a2baa1b2c7d547d1c",
        "mae-evaluate.yaml": "9339e354a1f5f94aa1ba75642a8101bbdb834c7794837de7e35e870f80be6e8a",
        "mae-max-loss.yaml": "e743bff5fdacf83790bd6bb1fde3f1051c40229988d41a5fe7db9ca4723b98a3",
        "mae-noisy-label.yaml": "c6317a1303424ee0d873edb72d3cb951aabf525770ba3b2a1f3f94c488aff290",
        "mae-ours-proxy.yaml": "49d70d6029925f1027c7c9cf732472777b6b058b718fda9b1912af39d926a452",
        "mae-ours.yaml": "9842449eb66ac361048435bb885f47d1c75784a8fbf27e766b3030d4ad25cfa5",
        "mae-pretrain.yaml": "c63370aca0481f05aa4d8c1e0b28bee02e82902bf24472773cfbe9236cca4904",
        "mae-random-encoder.yaml": "ac6885d835208bae50c79ded4dfea01a108471a67dfdbd387ad7c9ee5bd9419d",
        "mae-retain-label.yaml": "83fb88cf3a9c4c5d9829db40a0f0d6c31dedeb869916d4c14efbdced754fa39e",
        "mage-max-loss.yaml": "92ede9e8bf990a59f91bd68a8535b5058f8bae95f0dc050c8303cab48defe144",
        "mage-noisy-label.yaml": "ba5fc41888666b72f663fce0caa193beb4238987131376778feb83ce20984e13",
        "mage-ours-proxy.yaml": "fae796162dd37c4c93f18d93a5c524e7ceabbb21b7f585fed0cfe1d357ed258b",
        "mage-ours.yaml": "0380fbb05f677a45b63f795d8744bbab3e47c9f621d61576657966f3bbdbd43c",
        "mage-pretrain.yaml": "07226beb2d891433218a36adc2457d780c57483aa1c7535f5c58d88b08356d8a",
        "mage-random-encoder.yaml": "31bd51e55b10554fd32d788ab14294d9e117f6cca86f321e5fd627de1725b7e7",
        "mage-retain-label.yaml": "aad2ee19d1aca03958056e028a312d23271db5aa84ce704cd8b4a3bca1d7c8b2",
        "mage-tokenizer.yaml": "9db539015aee468a5833f59a315b0a4c251fb0ad980c0632de08d5b5b1a8d641",
        "vq-autoencoder-max-loss.yaml": "7f806aadc12969d00d4a61119c596acfbb34e478320c2717a443f90d3cc2895d",
        "vq-autoencoder-noisy-label.yaml": "01d48d541a32f6e1b645f63ea643f4d31d4f2a55777fb33ee5000597292a34c2",
        "vq-autoencoder-ours-proxy.yaml": "28d68714945b6327c01fc1828cc48c4b947a04ec33ecac20730c89846ee59312",
        "vq-autoencoder-ours.yaml": "dc09115a5f16a40e0992ea3f345f469ccfcfaf0cb945b05b383409164f9975af",
        "vq-autoencoder-pretrain.yaml": "ad0ce07a0355bf515decb1afb0fdaece6f9662ab0313bd2654544e1bc6f4efa6",
        "vq-autoencoder-random-encoder.yaml": "bad549e617e7f935eb6e9aad1806fe878f52787b799568e8a03ae044a8a99f28",
        "vq-autoencoder-retain-label.yaml": "e684bd5f0f0adc20ca404cd670dab4c881e2ccc526eb5bc4b5877d4507f3fc5c",
    ]
    static let fashionClassifierBefore = "50ead0e68530910a636d181236382de6e91ee3e6d4d7952a7c6bba56b573669f"
    static let fashionClassifier = "c57533872ea22df334d8b59a5e73e79dd8a8ec8d46a8833c065b6c5a324e5f85"

    /// The rename moved the VQ autoencoder's hashes and the longer budget the diffusion configs'; the
    /// MAE configs did not change; MAGE's are new.
    @Test func theDeliberateChangeMovedTheHashesItShould() {
        #expect(
            Set(Self.hashes.keys).subtracting(Self.before.keys)
                == Set(Self.hashes.keys.filter { $0.hasPrefix("mage-") }))
        for (file, hash) in Self.before {
            let moved = file.hasPrefix("vq-autoencoder-") || file.hasPrefix("diffusion-")
            #expect((Self.hashes[file] != hash) == moved, "\(file)")
        }
    }

    @Test func shippedConfigHashesAreUnchanged() throws {
        let files = Repo.runSpecConfigs
        #expect(files == Self.hashes.keys.sorted(), "a config was added or removed: pin its hash here")
        for file in files {
            let plan = try Planner(workingDirectory: Repo.path(".")).plan(specPath: Repo.path("configs/" + file))
            #expect(plan.configHash == Self.hashes[file], "\(file)")
            if let classifier = plan.stages.first(where: { $0.name == "classifier" }) {
                #expect(classifier.configHash == Self.fashionClassifier, "\(file)")
            }
        }
    }
}

/// Stages that train on one split of the data and are measured on another must know the split.
@Suite struct SplitIdentityTests {
    func unlearn(_ fraction: Double, pretrainFraction: Double, dir: TempDir) throws -> Plan {
        try dir.write(
            "pre.yaml",
            """
            version: 1
            kind: pretrain
            data: {dataset: image-folder, root: data, test_fraction: \(pretrainFraction)}
            model: {architecture: mae}
            """)
        return try Planner(workingDirectory: dir.path).plan(
            text: """
                version: 1
                kind: unlearn
                data: {dataset: image-folder, root: data, test_fraction: \(fraction), forget: {classes: [0]}}
                model: {architecture: mae, pretrain: pre.yaml}
                unlearn: {method: ours}
                """, in: dir)
    }

    @Test func theClassifierIdentityIncludesTheTestSplit() throws {
        let dir = try TempDir()
        _ = try dir.imageFolder(classes: 3)
        let a = try unlearn(0.1, pretrainFraction: 0.1, dir: dir)
        let b = try unlearn(0.2, pretrainFraction: 0.2, dir: dir)
        let ca = a.stages.first { $0.name == "classifier" }?.configHash
        let cb = b.stages.first { $0.name == "classifier" }?.configHash
        #expect(ca != nil && ca != cb, "a classifier trained on one split must not be reused for another")
    }

    @Test func aPretrainStageOnAnotherSplitOfTheSameDataIsRefused() throws {
        let dir = try TempDir()
        _ = try dir.imageFolder(classes: 3)
        #expect { try unlearn(0.2, pretrainFraction: 0.1, dir: dir) } throws: { error in
            let d = (error as? SpecError)?.diagnostics ?? []
            return d.contains {
                $0.pointer.description == "/data/test_fraction"
                    && $0.message.contains("test_fraction 0.1, this spec with 0.2")
            }
        }
    }
}
