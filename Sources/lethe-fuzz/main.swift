import Foundation
import LetheFuzz

// lethe-fuzz TARGET [FILE or FOLDER ...]
//
// Built normally it replays files (or every file of folders) through one reader, for reproducing a
// crash or checking a corpus. Built with `-sanitize=fuzzer` and `-D LETHE_LIBFUZZER` (`make fuzz`) it
// hands the rest of its arguments to libFuzzer, which explores the reader from the corpus folders given.

// libFuzzer re-runs this binary for -merge (and -fork) with its own flags only, so the target also
// travels in LETHE_FUZZ_TARGET.
var arguments = CommandLine.arguments
if arguments.count < 2 || FuzzTargets.named(arguments[1]) == nil,
    let name = ProcessInfo.processInfo.environment["LETHE_FUZZ_TARGET"]
{
    arguments.insert(name, at: 1)
}
guard arguments.count >= 2, let target = FuzzTargets.named(arguments[1]) else {
    FileHandle.standardError.write(
        Data(
            "usage: lethe-fuzz TARGET [FILE|FOLDER ...]; targets: \(FuzzTargets.all.map(\.name).joined(separator: ", "))\n"
                .utf8))
    exit(2)
}

#if LETHE_LIBFUZZER
    @_silgen_name("LLVMFuzzerRunDriver")
    func LLVMFuzzerRunDriver(
        _ argc: UnsafeMutablePointer<Int32>,
        _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
        _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
    ) -> Int32

    nonisolated(unsafe) var selected = target
    setenv("LETHE_FUZZ_TARGET", target.name, 1)

    /// libFuzzer's runtime links against this entry point even when driven by LLVMFuzzerRunDriver.
    @_cdecl("LLVMFuzzerTestOneInput")
    public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
        FuzzTargets.run(selected, size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size)))
        return 0
    }
    // libFuzzer sees the program name and everything after the target name.
    var fuzzerArguments = [arguments[0]] + arguments.dropFirst(2)
    var cArguments: [UnsafeMutablePointer<CChar>?] = fuzzerArguments.map { strdup($0) } + [nil]
    var argc = Int32(fuzzerArguments.count)
    let status = cArguments.withUnsafeMutableBufferPointer { buffer -> Int32 in
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = buffer.baseAddress
        return LLVMFuzzerRunDriver(&argc, &argv, fuzzOneInput)
    }
    exit(status)
#else
    var files: [String] = []
    for path in arguments.dropFirst(2) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            FileHandle.standardError.write(Data("lethe-fuzz: \(path): no such file or folder\n".utf8))
            exit(2)
        }
        if isDirectory.boolValue {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
            files += names.sorted().map { path + "/" + $0 }
        } else {
            files.append(path)
        }
    }
    for file in files {
        guard let data = FileManager.default.contents(atPath: file) else { continue }
        FuzzTargets.run(target, [UInt8](data))
    }
    print("lethe-fuzz \(target.name): \(files.count) inputs, no crash")
#endif
