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
/// hashes from the classifier settings' entry into the schema (2026-12-03, morning) until issue 15;
/// `hashes`: since issue 15's method and evaluation settings entered the schema (`unlearn.mask`,
/// `unlearn.noise.space`/`target`/`per_batch_over`, `unlearn.retain_term`, `unlearn.vqgan_embedding`,
/// `model.diffusion.beta_schedule`, `evaluate.masks`/`bootstrap`/`kid_*`, `test_per_class: null`) and the
/// shipped budgets grew (unlearning 600 steps, one epoch of the forget set; MAE pretraining 2,000).
/// The feature classifier's identity did not move.
@Suite struct ShippedConfigHashTests {
    static let before: [String: String] = [
        "diffusion-max-loss.yaml": "6579e7c0ef2c5d341f78acf26b703c7a29a80aeed77953a4f10be695e1fd44da",
        "diffusion-noisy-label.yaml": "3c2f57f77dd35c5812c03b76aeef1656f7c7f9a8692aa945174776218918ee8b",
        "diffusion-ours-proxy.yaml": "7637478d0cccfeac70b1b1afd4b96d932e8ca2be1af225f42c283d379060976c",
        "diffusion-ours.yaml": "4496602a3831f4a1fdd03e88dbb2d1d0b751832ab2ce2884b432685adaa638b4",
        "diffusion-pretrain.yaml": "9f1af36a88a72965c5922aaaa613e738697bac27fa5f5e4a4c92e8488fdd1b60",
        "diffusion-random-encoder.yaml": "84dfe7f30fa28952f792a50ea4b0243dfaf34737b0857fb75e77f35cc502fc54",
        "diffusion-retain-label.yaml": "8279843b42cfa215b605ccb0f6d8e8b169c9b9c24dee17e81b06e23a8a6df955",
        "mae-evaluate.yaml": "38b90da0cca3947d7dadb2ebcff76c32ae386bf4b9b02180c82ba61baf658f10",
        "mae-max-loss.yaml": "49b0b83a312de13fd7203b472f09d8ee5a9398701b2f82070f4efc70bbff0a31",
        "mae-noisy-label.yaml": "4463a8d1af2c2b6cbc7824a6ca83ba20695104d0a3767901f0c286c6b557c273",
        "mae-ours-proxy.yaml": "84910050cb736f89dc9fd3bd0f1ab492f1a206a33a943253c696d6e00a0b2684",
        "mae-ours.yaml": "312369ad54f116f1cb8d82582a57503256cdee894ad4f20320b329494b9055ea",
        "mae-pretrain.yaml": "457def2602ced0541054b72c6ebba4dab2bc054c327903e3ff4a750a5d7685ef",
        "mae-random-encoder.yaml": "5b076fe5ee49cfb8292f0e778948bce79be0cce162424ed4e3b62bce1c116c1d",
        "mae-retain-label.yaml": "56128306bab694612f4d5c855c0ca849863d35458789cb83ab3627f5a383cbfd",
        "vqgan-max-loss.yaml": "9af001a7f60f5067db635b61f07e95de39933567dbda4e6348744081980d3bb2",
        "vqgan-noisy-label.yaml": "7413592c2b28a24d4772eeadaba9cd74e82f45904273e153e68c8d082255c551",
        "vqgan-ours-proxy.yaml": "59da58877f67071fff17b2c3a40165a4d25caf2c736fdee55e79acdb76fbf1b8",
        "vqgan-ours.yaml": "e4924dd8c7c715b55db603b65b0ed63af26220a50eeddda5d89772490194c0a3",
        "vqgan-pretrain.yaml": "a420b7605cce3667f62c6a499c0da77ebd9d07d172884786b7c37b7ae0c76103",
        "vqgan-random-encoder.yaml": "38152f4b98a5fe0f413b579bc944cf50be34d6dda3e66898b7a44be200019f4d",
        "vqgan-retain-label.yaml": "b8e622f1b3ae259d5ebebe0adf23ab4c170febaf7142c22cda52cc6bdf882384",
    ]
    static let hashes: [String: String] = [
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
        "vqgan-max-loss.yaml": "98593a340b0e015578ef31ba3451a75fe019c920ffa0752e66ba4b52c83c5bde",
        "vqgan-noisy-label.yaml": "138ef70daffc8d2a8c7eb8c10b696a364a1f9f01cb1639df7047f163acfd3463",
        "vqgan-ours-proxy.yaml": "57418b10ad4ba47b78333680b58de85ad1347b89dc1f5f7db2469459b7ff7dfe",
        "vqgan-ours.yaml": "993096b37f2bcade8b6b1930321061410c5ead2f085153b420be0402bb9def6f",
        "vqgan-pretrain.yaml": "009ef55f725443133650428b26479fa8471f477e5b41d8b00b77bbdf0ad3f345",
        "vqgan-random-encoder.yaml": "78be20487b5e76753ae439ae1f9e053937d13a9bca257fcb5e4d43dad0f12ff5",
        "vqgan-retain-label.yaml": "9511b3e79e1e47d3a64b9bec466f4b211259f39f31a1fdbcb3892b08bda40cfe",
    ]
    static let fashionClassifierBefore = "50ead0e68530910a636d181236382de6e91ee3e6d4d7952a7c6bba56b573669f"
    static let fashionClassifier = "c57533872ea22df334d8b59a5e73e79dd8a8ec8d46a8833c065b6c5a324e5f85"

    @Test func theDeliberateChangeMovedEveryHash() {
        #expect(Set(Self.before.keys) == Set(Self.hashes.keys))
        for (file, hash) in Self.hashes { #expect(Self.before[file] != hash, "\(file)") }
    }

    @Test func shippedConfigHashesAreUnchanged() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Repo.path("configs")).filter {
            $0.hasSuffix(".yaml")
        }.sorted()
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
