using Hypervisor.Core.X86;
using Hypervisor.Host.Loading;
using Hypervisor.Host.Runtime;
using Microsoft.Extensions.Logging;

namespace Hypervisor.Host.Cli;

/// <summary>
/// One <c>hv run</c> after parsing: read the image and module files, check the image
/// (<see cref="BootImageLoader"/>), build the machine, load, run with the progress line on a
/// terminal, and turn the end of the run into a message and an exit status
/// (<see cref="ExitCodes"/>). Every failure before the guest starts is one line on stderr and
/// status 2, with nothing run.
/// </summary>
public sealed class GuestRunner(HostConsole console, ILoggerFactory logging)
{
    public int Run(RunRequest request)
    {
        var err = console.Error;
        if (request.Flat != null && (request.Append != null || request.Modules.Count > 0))
        {
            err.WriteLine("hv: --append, --initrd and --module pass information to a multiboot kernel; --load flat loads a raw binary, which gets none");
            return ExitCodes.UsageOrImageError;
        }
        if (!TryRead(request.ImagePath, request.ImageName, out byte[] file))
            return ExitCodes.UsageOrImageError;
        var modules = new List<MultibootModule>();
        foreach (var m in request.Modules)
        {
            if (!TryRead(Path.GetFullPath(m.File), $"{m.Option} {m.File}", out byte[] data))
                return ExitCodes.UsageOrImageError;
            modules.Add(new MultibootModule(m.File, data, m.String));
        }

        BootImage image;
        try
        {
            image = BootImageLoader.Load(file, request.MemorySize, new LoadOptions
            {
                Name = request.ImageName,
                Append = request.Append,
                Modules = modules,
                Flat = request.Flat,
            });
        }
        catch (ImageException e)
        {
            err.WriteLine($"hv: {request.ImageName}: {e.Message}");
            return ExitCodes.UsageOrImageError;
        }

        VirtualMachine vm;
        try
        {
            vm = VirtualMachine.Create(request.MemorySize, console.Serial, request.Machine, logging);
        }
        catch (MachineConfigurationException e)
        {
            err.WriteLine($"hv: {e.Message}");
            return ExitCodes.UsageOrImageError;
        }
        catch (OutOfMemoryException)
        {
            err.WriteLine($"hv: cannot allocate {request.MemorySize} bytes of guest memory; try a smaller --memory");
            return ExitCodes.UsageOrImageError;
        }

        using (vm)
        {
            try
            {
                vm.Load(image);
            }
            catch (KvmException e)
            {
                // KVM_SET_SREGS refuses an entry state the guest CPUID does not allow (a 64-bit
                // start with --cpu host,-lm): the image cannot run on this machine as configured.
                err.WriteLine($"hv: {request.ImageName}: cannot start the {image.Description}: {e.Message}");
                return ExitCodes.UsageOrImageError;
            }
            if (!SnapshotRunOptions.Prepare(vm, request.Snapshot, err))
                return ExitCodes.UsageOrImageError;
            RunProgress? progress = null;
            if (console.ErrorIsTerminal && !request.Quiet)
            {
                progress = new RunProgress(err, console.ProgressInterval);
                progress.Attach(vm);
            }
            RunResult result;
            try
            {
                result = vm.Run(request.MaxInstructions);
            }
            finally
            {
                progress?.Finish();
            }
            return Finish(vm, result, request.Stats, request.Snapshot, err);
        }
    }

    /// <summary>The end of a run, for <c>hv run</c> and <c>hv restore</c> alike: why it ended (when that
    /// needs saying), the statistics when asked, the snapshot the options ask for, and the status.</summary>
    internal static int Finish(VirtualMachine vm, RunResult result, bool stats, SnapshotPlan? snapshot, TextWriter err)
    {
        switch (result.End)
        {
            case RunEnd.Shutdown:
                err.WriteLine($"hv: guest shutdown: {result.Message}");
                break;
            case RunEnd.Unimplemented:
            case RunEnd.InternalError:
            case RunEnd.InstructionLimit:
            case RunEnd.Stopped:
                err.WriteLine($"hv: {result.Message}");
                break;
        }
        if (stats)
            vm.Statistics.WriteTo(err);
        int? failed = SnapshotRunOptions.Finish(vm, snapshot, err);
        err.Flush();
        return failed ?? ExitCodes.For(result);
    }

    /// <summary>Reads a whole file, or says on stderr why it cannot (named <paramref name="name"/>).</summary>
    private bool TryRead(string path, string name, out byte[] bytes)
    {
        var err = console.Error;
        bytes = [];
        try
        {
            long length = new FileInfo(path).Length;
            if (length > Array.MaxLength)
            {
                err.WriteLine($"hv: {name}: the file is {length} bytes, more than hv can load ({Array.MaxLength})");
                return false;
            }
            bytes = File.ReadAllBytes(path);
            return true;
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            err.WriteLine($"hv: {name}: no such file");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            err.WriteLine($"hv: {name}: cannot read: {e.Message}");
        }
        return false;
    }
}
